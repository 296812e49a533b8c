GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build setup test unit integration vet bench demo clean fuzz rules

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/replink ./cmd/replink

setup:
	./scripts/setup.sh

vet:
	@test -z "$$(gofmt -l $$(find . -name '*.go' -not -path './bin/*'))" || { echo "gofmt needed:"; gofmt -l $$(find . -name '*.go' -not -path './bin/*'); exit 1; }
	$(GO) vet ./...

# Everything: unit tests, integration tests against real mariadbd, and the
# alert rules through promtool.
test: setup vet build rules
	$(GO) test -race -count=1 -timeout 12m ./...

rules:
	promtool check rules dashboards/alerts.yml
	cd dashboards && promtool test rules alerts_test.yml

unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /test$$)

integration: setup
	$(GO) test -race -count=1 -timeout 12m ./test/...

# Benchmarks (not part of make test): Go benchmarks of the hot paths, then
# the end-to-end benchmarks against real mariadbd, stunnel and
# mariadb-binlog (tables, JSON and bench.png in bench/out/).
BENCH_REPORTS := ingest slaves latency small memory
bench: build
	./scripts/setup.sh --bench
	@mkdir -p bench/out
	$(GO) test -run '^$$' -bench . -benchmem ./binlog/ ./tlsutil/ ./relay/ | tee bench/out/go-bench.txt
	$(GO) test -tags bench -count=1 -timeout 60m -run '^TestBench' -v ./test/
	gnuplot -c bench/plot.gp bench/out
	@cat $(foreach r,$(BENCH_REPORTS),bench/out/$(r).txt)
	@echo "results: bench/out/*.json, plot: bench/out/bench.png"

# Each fuzz target for FUZZTIME (the seed corpora also run in make test).
FUZZTIME ?= 60s
fuzz:
	@for t in FuzzParseEvent FuzzScanComplete FuzzParseMariaState FuzzGTIDList FuzzResentFDE; do \
	  $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) ./binlog/ || exit 1; done
	@for t in FuzzHandleQuery FuzzParseCommands FuzzParseHandshakeResponse FuzzRelayServer; do \
	  $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) ./relay/ || exit 1; done
	$(GO) test -run '^$$' -fuzz '^FuzzLoadFile$$' -fuzztime $(FUZZTIME) ./config/
	$(GO) test -run '^$$' -fuzz '^FuzzDumpStream$$' -fuzztime $(FUZZTIME) ./replica/
	$(GO) test -run '^$$' -fuzz '^FuzzRoundTrip$$' -fuzztime $(FUZZTIME) ./packet/

# A local master and slave, replink between them over verified TLS.
demo: setup build
	./scripts/demo.sh

clean:
	rm -rf bin demo
