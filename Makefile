# cekat-archiver. `make demo` runs the main job locally; `make test` runs every test.
SHELL := /bin/bash
CH := deploy/clickhouse/clickhouse.sh
CH_ADDR ?= 127.0.0.1:$(or $(CEKAT_CH_NATIVE_PORT),19000)

.PHONY: demo test vet fmt-check build bench stop

demo:
	deploy/demo.sh

# Starts the private ClickHouse (installing Debian's package when missing), runs vet, the
# gofmt check and every test with the race detector, and stops ClickHouse again if it
# was not running before.
test:
	@was_running=0; $(CH) status >/dev/null 2>&1 && was_running=1; \
	$(CH) start || exit 1; \
	status=0; \
	$(MAKE) --no-print-directory vet fmt-check || status=1; \
	if [ $$status -eq 0 ]; then \
		CEKAT_ARCHIVER_TEST_CLICKHOUSE_ADDR=$(CH_ADDR) go test -race -count=1 -timeout 20m ./... || status=1; \
	fi; \
	[ $$was_running -eq 1 ] || $(CH) stop; \
	exit $$status

vet:
	go vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); [ -z "$$out" ] || { echo "gofmt needed: $$out"; exit 1; }

build:
	go build -o bin/ ./cmd/...

stop:
	$(CH) stop
