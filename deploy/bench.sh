#!/usr/bin/env bash
# The benchmarks: the sink against clickhouse-client, the sync end to end against the
# simulator's own capacity, and the peak RSS of `sync --once` archiving 1,000,000 messages.
#
# Usage: deploy/bench.sh [GO TEST FLAGS...]      (or: make bench)
#
#   deploy/bench.sh                              every benchmark once (the RSS one takes minutes)
#   deploy/bench.sh -bench Sink                  only those matching
#   CEKAT_BENCH_RSS_MESSAGES=50000 deploy/bench.sh   a quick check of the RSS benchmark
#
# Starts the private ClickHouse (deploy/clickhouse/clickhouse.sh start) and stops it again if
# it was not running before. Benchmarks print their figures and the ratios measured in the
# same run; none asserts a timing. Packages run one after the other (-p 1): on a small
# machine two benchmarks at once would measure each other. The output is also kept in
# .run/bench/.
#
# Environment (see each bench_test.go for more):
#   CEKAT_CH_ENGINE   chdb (default: ClickHouse 26.7's engine) or debian (Debian's 18.16); see
#                     deploy/clickhouse/clickhouse.sh
#   CEKAT_BENCH_SINK_ROWS, CEKAT_BENCH_SINK_ROUNDS,
#   CEKAT_BENCH_HEAP_ROWS, CEKAT_BENCH_ARCHIVED_IDS_ROWS    sink/bench_test.go
#   CEKAT_BENCH_SYNC_MESSAGES, CEKAT_BENCH_SYNC_CONVERSATIONS   syncer/bench_test.go
#   CEKAT_BENCH_RSS_MESSAGES, CEKAT_BENCH_RSS_CONVERSATIONS,
#   CEKAT_BENCH_RSS_DETAIL_CONCURRENCY, CEKAT_BENCH_RSS_SHAPE   cmd/cekat-archiver/bench_test.go
#   CEKAT_BENCH_HEAPPROFILE_DIR   also run the in-process heap-profile variant of the RSS benchmark
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_DIR"
CH=deploy/clickhouse/clickhouse.sh
export CEKAT_CH_ENGINE="${CEKAT_CH_ENGINE:-chdb}"

was_running=0
"$CH" status >/dev/null 2>&1 && was_running=1
"$CH" start
# The address of the running instance (it may run on another port than the default).
eval "$("$CH" env)"
export CEKAT_ARCHIVER_TEST_CLICKHOUSE_ADDR

mkdir -p .run/bench
out=".run/bench/bench-$(date -u +%Y%m%dT%H%M%SZ).txt"
status=0
{
	echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(go version) $(nproc) CPUs, ClickHouse ($CEKAT_CH_ENGINE) $CEKAT_ARCHIVER_TEST_CLICKHOUSE_ADDR"
	go test -p 1 -run '^$' -bench . -benchtime 1x -timeout 90m "$@" ./sink/ ./syncer/ ./cmd/cekat-archiver/
} 2>&1 | tee "$out" || status=1
[ "$was_running" -eq 1 ] || "$CH" stop
echo "bench: output kept in $out"
exit $status
