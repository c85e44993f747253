# cekat-archiver. `make demo` runs the main job locally; `make test` runs every test.
SHELL := /bin/bash
CH := deploy/clickhouse/clickhouse.sh
CH_ADDR ?= 127.0.0.1:$(or $(CEKAT_CH_NATIVE_PORT),19000)

.PHONY: demo test vet fmt-check build bench stop

demo:
	deploy/demo.sh

# Runs vet, the gofmt check and every test with the race detector on Debian's ClickHouse 18.16
# (the floor the archiver supports), then the sink's and the guide's tests again on ClickHouse
# 26.7's engine (chDB; see deploy/clickhouse/clickhouse.sh). Each private server is installed
# when missing, started, and stopped again if this started it; so are Debian's Prometheus (for
# the end-to-end metrics test) and the private cluster (ZooKeeper and two replicas of 18.16;
# deploy/clickhouse/cluster.sh) for the cluster tests. The cluster tests are skipped, with the
# reason, only when Debian's zookeeper package cannot be installed.
# TEST_CURRENT_PKGS are the packages of the 26.7 round (empty: no such round; all the binary's
# end-to-end tests too, about 8 more minutes: TEST_CURRENT_PKGS='./sink/... ./guide/
# ./cmd/cekat-archiver/'), TEST_CURRENT_SKIP a -skip pattern for it, TEST_CURRENT_E2E the
# binary's tests the round runs besides (sync, kills mid-INSERT, purge, erasure, status: about
# 2 minutes; empty: none), CH_CURRENT_PORT and CH_CURRENT_HTTP_PORT its server's ports.
CLUSTER := deploy/clickhouse/cluster.sh
CH_CURRENT_PORT ?= 19200
CH_CURRENT_HTTP_PORT ?= 18223
CH_CURRENT_ADDR := 127.0.0.1:$(CH_CURRENT_PORT)
# The debian engine's directory and ports in the environment are not the chdb engine's.
CHDB := env -u CEKAT_CH_DIR CEKAT_CH_ENGINE=chdb CEKAT_CH_NATIVE_PORT=$(CH_CURRENT_PORT) CEKAT_CH_HTTP_PORT=$(CH_CURRENT_HTTP_PORT) $(CH)
TEST_CURRENT_PKGS ?= ./sink/... ./guide/
TEST_CURRENT_SKIP ?=
TEST_CURRENT_E2E ?= ^(TestCLI|TestSurvivesSIGKILL|TestKilledRunsCountEveryRequest|TestPurgeAndEraseCommands|TestEraseByPhoneAfterWebhooks|TestStatusJSONAndLagging|TestDaemonRunsThePurgeOnSchedule)$$

test:
	@deploy/prometheus/prometheus.sh install || exit 1; \
	was_running=0; CEKAT_CH_ENGINE=debian $(CH) status >/dev/null 2>&1 && was_running=1; \
	CEKAT_CH_ENGINE=debian $(CH) start || exit 1; \
	cluster_was_running=0; $(CLUSTER) status >/dev/null 2>&1 && cluster_was_running=1; \
	cluster_env=""; \
	if $(CLUSTER) install; then \
		$(CLUSTER) start || { [ $$was_running -eq 1 ] || CEKAT_CH_ENGINE=debian $(CH) stop; exit 1; }; \
		cluster_env=$$($(CLUSTER) env | sed 's/^export //'); \
	else \
		echo "make test: the cluster tests are SKIPPED: Debian's zookeeper package could not be installed (see above)"; \
	fi; \
	status=0; \
	$(MAKE) --no-print-directory vet fmt-check || status=1; \
	if [ $$status -eq 0 ]; then \
		echo "make test: every package on ClickHouse 18.16 ($(CH_ADDR))"; \
		env $$cluster_env CEKAT_ARCHIVER_TEST_CLICKHOUSE_ADDR=$(CH_ADDR) CEKAT_ARCHIVER_TEST_PROMETHEUS=$$(command -v prometheus) go test -race -count=1 -timeout 30m ./... || status=1; \
	fi; \
	[ -z "$$cluster_env" ] || [ $$cluster_was_running -eq 1 ] || $(CLUSTER) stop; \
	[ $$was_running -eq 1 ] || CEKAT_CH_ENGINE=debian $(CH) stop; \
	if [ $$status -eq 0 ] && [ -n "$(TEST_CURRENT_PKGS)" ]; then \
		echo "make test: $(TEST_CURRENT_PKGS) on ClickHouse 26.7 ($(CH_CURRENT_ADDR))"; \
		current_was_running=0; $(CHDB) status >/dev/null 2>&1 && current_was_running=1; \
		if $(CHDB) start; then \
			CEKAT_ARCHIVER_TEST_CLICKHOUSE_ADDR=$(CH_CURRENT_ADDR) CEKAT_ARCHIVER_TEST_PROMETHEUS=$$(command -v prometheus) go test -race -count=1 -timeout 30m $(if $(TEST_CURRENT_SKIP),-skip '$(TEST_CURRENT_SKIP)') $(TEST_CURRENT_PKGS) || status=1; \
			if [ -n '$(TEST_CURRENT_E2E)' ]; then \
				echo "make test: the binary's end-to-end tests $(TEST_CURRENT_E2E) on ClickHouse 26.7"; \
				CEKAT_ARCHIVER_TEST_CLICKHOUSE_ADDR=$(CH_CURRENT_ADDR) go test -race -count=1 -timeout 30m -run '$(TEST_CURRENT_E2E)' ./cmd/cekat-archiver/ || status=1; \
			fi; \
			[ $$current_was_running -eq 1 ] || $(CHDB) stop; \
		else \
			status=1; \
		fi; \
	fi; \
	exit $$status

STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

vet:
	go vet ./...
	go run $(STATICCHECK) ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); [ -z "$$out" ] || { echo "gofmt needed: $$out"; exit 1; }

# The version and revision go in by -ldflags too: the toolchain stamps them only from a checkout
# and not with GOFLAGS=-buildvcs=false.
LDFLAGS := -X main.ldVersion=$(shell git describe --tags --always --dirty 2>/dev/null || echo dev) \
	-X main.ldRevision=$(shell git rev-parse HEAD 2>/dev/null || echo unknown)

build:
	go build -ldflags "$(LDFLAGS)" -o bin/ ./cmd/...

# Every benchmark once (sink vs clickhouse-client, sync vs the simulator's capacity, peak RSS
# of a 1,000,000-message sync --once; several minutes), against the private ClickHouse.
# Extra go test flags: make bench BENCH_FLAGS='-bench Sink'.
bench:
	deploy/bench.sh $(BENCH_FLAGS)

stop:
	CEKAT_CH_ENGINE=debian $(CH) stop
	$(CHDB) stop
	$(CLUSTER) stop
