# cekat-archiver. `make demo` runs the main job locally; `make test` runs every test.
SHELL := /bin/bash
CH := deploy/clickhouse/clickhouse.sh
CH_ADDR ?= 127.0.0.1:$(or $(CEKAT_CH_NATIVE_PORT),19000)

.PHONY: demo test vet fmt-check build bench stop

demo:
	deploy/demo.sh

# Starts the private ClickHouse (installing Debian's package when missing), installs
# Debian's Prometheus when missing (for the end-to-end metrics test), starts the private
# cluster (ZooKeeper and two replicas; deploy/clickhouse/cluster.sh) for the cluster tests,
# runs vet, the gofmt check and every test with the race detector, and stops what it
# started. The cluster tests are skipped, with the reason, only when Debian's zookeeper
# package cannot be installed.
CLUSTER := deploy/clickhouse/cluster.sh

test:
	@deploy/prometheus/prometheus.sh install || exit 1; \
	was_running=0; $(CH) status >/dev/null 2>&1 && was_running=1; \
	$(CH) start || exit 1; \
	cluster_was_running=0; $(CLUSTER) status >/dev/null 2>&1 && cluster_was_running=1; \
	cluster_env=""; \
	if $(CLUSTER) install; then \
		$(CLUSTER) start || { [ $$was_running -eq 1 ] || $(CH) stop; exit 1; }; \
		cluster_env=$$($(CLUSTER) env | sed 's/^export //'); \
	else \
		echo "make test: the cluster tests are SKIPPED: Debian's zookeeper package could not be installed (see above)"; \
	fi; \
	status=0; \
	$(MAKE) --no-print-directory vet fmt-check || status=1; \
	if [ $$status -eq 0 ]; then \
		env $$cluster_env CEKAT_ARCHIVER_TEST_CLICKHOUSE_ADDR=$(CH_ADDR) CEKAT_ARCHIVER_TEST_PROMETHEUS=$$(command -v prometheus) go test -race -count=1 -timeout 20m ./... || status=1; \
	fi; \
	[ -z "$$cluster_env" ] || [ $$cluster_was_running -eq 1 ] || $(CLUSTER) stop; \
	[ $$was_running -eq 1 ] || $(CH) stop; \
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
	$(CH) stop
	$(CLUSTER) stop
