#!/usr/bin/env bash
# The main job, locally: a private ClickHouse, the Cekat API simulator, and the archiver
# discovering every simulated conversation through the conversation list (GET /api/conversations)
# and archiving it, then its status and a few numbers from the archive.
#
# Usage: deploy/demo.sh            (or: make demo)
#
# Environment:
#   DEMO_CONVERSATIONS   simulated conversations (default 40)
#   DEMO_MEAN_MESSAGES   mean messages per conversation, heavy-tailed (default 150)
#   DEMO_SHAPE           documented or real (default real)
#   DEMO_SIM_ADDR        simulator address (default 127.0.0.1:18090)
#   CEKAT_CH_ENGINE      chdb (default: ClickHouse 26.7's engine, fetched with npm on first use)
#                        or debian (Debian's ClickHouse 18.16); see deploy/clickhouse/clickhouse.sh
# and deploy/clickhouse/clickhouse.sh's other CEKAT_CH_* (ports, state directory) for the private ClickHouse.
# ClickHouse is left running so the archive can be queried:
#   CEKAT_CH_ENGINE=chdb deploy/clickhouse/clickhouse.sh client --database cekat_demo
# and stopped with: CEKAT_CH_ENGINE=chdb deploy/clickhouse/clickhouse.sh stop   (or: make stop)
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_DIR"
export CEKAT_CH_ENGINE="${CEKAT_CH_ENGINE:-chdb}"
RUN_DIR="$REPO_DIR/.run/demo"
BIN_DIR="$REPO_DIR/bin"
SIM_ADDR="${DEMO_SIM_ADDR:-127.0.0.1:18090}"
# analytics.timezone: the days of messages_daily, and of the numbers below.
ZONE="Asia/Jakarta"
mkdir -p "$RUN_DIR" "$BIN_DIR"

step() { printf '\n==> %s\n' "$*"; }

step "Building"
go build -o "$BIN_DIR/" ./cmd/cekat-archiver ./cmd/cekat-sim

step "Starting the private ClickHouse"
deploy/clickhouse/clickhouse.sh start
eval "$(deploy/clickhouse/clickhouse.sh env)"

step "Starting the Cekat API simulator on $SIM_ADDR"
# History ends now, so statuses of recent outbound messages are still moving.
"$BIN_DIR/cekat-sim" -listen "$SIM_ADDR" -backoffice-listen "" \
	-conversations "${DEMO_CONVERSATIONS:-40}" -mean-messages "${DEMO_MEAN_MESSAGES:-150}" \
	-shape "${DEMO_SHAPE:-real}" -malformed-rate 0.002 -fault-5xx 0.01 \
	-start "$(date -u +%Y-%m-%dT%H:%M:%SZ)" -ids-file "$RUN_DIR/conversations.txt" \
	2>"$RUN_DIR/sim.log" &
SIM_PID=$!
trap 'kill "$SIM_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
	[ -s "$RUN_DIR/conversations.txt" ] && curl -fsS "http://$SIM_ADDR/_sim/counts" >/dev/null 2>&1 && break
	sleep 0.1
done
echo "$(wc -l <"$RUN_DIR/conversations.txt") conversations simulated"

cat >"$RUN_DIR/config.yaml" <<YAML
# Written by deploy/demo.sh: the archiver against the local simulator.
api:
  base_url: http://$SIM_ADDR
  key: sim-api-key
  auth: both
  # The local simulator is not rate limited; a real plan allows 10 to 1,000 a minute.
  rate_limit:
    per_minute: 1000000
    per_day: 0
clickhouse:
  addr: [$CEKAT_ARCHIVER_CLICKHOUSE_ADDR]
  database: cekat_demo
# Discovery: the conversations the API lists, of every platform (the default is WhatsApp
# only), so the archive has every simulated conversation and the table conversations is filled.
conversations:
  discover:
    enabled: true
    platforms: []
analytics:
  timezone: $ZONE
sync:
  concurrency: 4
  detail_concurrency: 8
log:
  format: console
YAML
export CEKAT_ARCHIVER_CONFIG="$RUN_DIR/config.yaml"

step "cekat-archiver migrate (into a fresh database cekat_demo)"
deploy/clickhouse/clickhouse.sh client --query "DROP DATABASE IF EXISTS cekat_demo"
"$BIN_DIR/cekat-archiver" migrate

step "cekat-archiver sync --once (first sync: the whole history)"
"$BIN_DIR/cekat-archiver" sync --once

step "cekat-archiver sync --once (again: nothing new upstream: the conversation list shows every conversation unchanged, so only statuses still moving are re-checked)"
"$BIN_DIR/cekat-archiver" sync --once --progress=none

step "cekat-archiver status"
"$BIN_DIR/cekat-archiver" status >"$RUN_DIR/status.txt"
head -n 16 "$RUN_DIR/status.txt"
echo "... ($(($(wc -l <"$RUN_DIR/status.txt") - 2)) conversations; whole table and totals in $RUN_DIR/status.txt)"

step "A few numbers from the archive"
q() { deploy/clickhouse/clickhouse.sh client --database cekat_demo --format PrettyCompact --query "$1"; }
q "SELECT count() AS messages, uniqExact(conversation_id) AS conversations, min(sent_at) AS oldest, max(sent_at) AS newest FROM messages_current"
q "SELECT type, count() AS messages, round(avg(enriched), 3) AS enriched FROM messages_current GROUP BY type ORDER BY messages DESC"
q "SELECT direction, status, count() AS messages FROM messages_current GROUP BY direction, status ORDER BY direction, messages DESC"
q "SELECT platform_type, stage_status, count() AS conversations FROM conversations FINAL GROUP BY platform_type, stage_status ORDER BY platform_type, conversations DESC"
# Per day and direction, from the rollup behind messages_daily: counts add up across its rows,
# medians do not (the largest of the rows' medians is no median), so the median is taken of
# every delivery time of the day and direction, merged from the rollup's states.
q "SELECT day, direction, messages, read_count, if(empty(d), NULL, toNullable(round(arrayReduce('quantileExact(0.5)', d), 1))) AS delivery_p50_s FROM (SELECT toDate(bucket, '$ZONE') AS day, direction, uniqExactMerge(messages_state) AS messages, uniqExactIfMerge(read_state) AS read_count, arrayMap(p -> p.2, groupUniqArrayIfMerge(delivery_seconds_state)) AS d FROM message_rollup GROUP BY day, direction) ORDER BY day DESC, direction LIMIT 6"
q "SELECT responder_name, count() AS turns, round(quantileExact(0.5)(response_seconds), 1) AS first_response_p50_s FROM message_turns WHERE opens_turn AND reply_message_id != '' GROUP BY responder_name ORDER BY turns DESC LIMIT 5"
q "SELECT endpoint, count() AS quarantined FROM quarantine FINAL GROUP BY endpoint"
q "SELECT run_id, result, new_messages, enriched, rechecked, requests, finished_at - started_at AS seconds FROM sync_runs FINAL ORDER BY started_at"

echo
echo "The archive stays in ClickHouse: CEKAT_CH_ENGINE=$CEKAT_CH_ENGINE deploy/clickhouse/clickhouse.sh client --database cekat_demo"
echo "Stop ClickHouse with: make stop"
