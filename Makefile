GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build setup test unit integration vet bench demo clean fuzz rules deploy-check deploy-generate

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/replink ./cmd/replink

setup:
	./scripts/setup.sh

vet:
	@test -z "$$(gofmt -l $$(find . -name '*.go' -not -path './bin/*'))" || { echo "gofmt needed:"; gofmt -l $$(find . -name '*.go' -not -path './bin/*'); exit 1; }
	$(GO) vet ./...

# Everything: unit tests, integration tests against real mariadbd, the
# alert rules through promtool, and the deployment files (deploy-check).
test: setup vet build rules deploy-check
	$(GO) test -race -count=1 -timeout 12m ./...

# The alert rules and their tests, and the Alertmanager configuration
# (inhibit rules) beside them.
rules:
	promtool check rules dashboards/alerts.yml
	cd dashboards && promtool test rules alerts_test.yml
	amtool check-config dashboards/alertmanager.yml

# The deployment files: the static build the Dockerfile makes, the systemd
# unit through systemd-analyze verify, and the deploy/ module's tests (the
# Kubernetes manifests decoded strictly against the API types, the
# PrometheusRule against dashboards/alerts.yml, the unit's hardening, the
# Dockerfile's key lines, dashboards/replink.json decoded strictly against
# grafana-foundation-sdk's dashboard schema with every query keeping
# instance and shown in the unit of what it computes).
#
# systemd-analyze verify fails a unit whose ExecStart binary is missing, and
# the unit names /usr/local/bin/replink. Rather than edit the unit, it is
# verified unchanged with --root in a temporary tree: the unit in
# etc/systemd/system, this machine's unit directory in usr/lib/systemd/system
# (for the targets it names), the static bin/replink at ExecStart's path and
# this machine's binary at every other Exec*= path. verify exits 0 on unknown
# keys and bad values (it only warns), so any output fails the check.
# replink.sysusers goes through systemd-sysusers --dry-run in a scratch root.
# Skipped, saying so, only where systemd-analyze is missing.
SYSTEMD_UNIT := deploy/systemd/replink.service
deploy-check:
	CGO_ENABLED=0 $(MAKE) --no-print-directory build
	@case "$$(ldd bin/replink 2>&1)" in *"not a dynamic executable"*|*"statically linked"*) echo "bin/replink is static";; \
	  *) echo "bin/replink is not static with CGO_ENABLED=0:"; ldd bin/replink; exit 1;; esac
	@if ! command -v systemd-analyze >/dev/null 2>&1; then \
	  echo "deploy-check: SKIPPED systemd-analyze verify $(SYSTEMD_UNIT): systemd-analyze is not installed here"; \
	else \
	  root=$$(mktemp -d) && trap 'rm -rf "$$root"' EXIT && \
	  units=$$(for d in /usr/lib/systemd/system /lib/systemd/system; do [ -f $$d/multi-user.target ] && echo $$d && break; done) && \
	  mkdir -p "$$root/usr/bin" "$$root/usr/lib/systemd" "$$root/etc/systemd/system" && \
	  ln -s usr/bin "$$root/bin" && ln -s usr/lib "$$root/lib" && \
	  cp -r "$$units" "$$root/usr/lib/systemd/system" && \
	  cp $(SYSTEMD_UNIT) "$$root/etc/systemd/system/" && \
	  for exe in $$(sed -n 's/^Exec[A-Za-z]*=[-@:+!]*\([^ ]*\).*/\1/p' $(SYSTEMD_UNIT) | sort -u); do \
	    src=$$exe; [ "$$(basename $$exe)" = replink ] && src=bin/replink; \
	    install -D -m 0755 "$$src" "$$root$$exe" || exit 1; done && \
	  out=$$(systemd-analyze verify --root="$$root" $$(basename $(SYSTEMD_UNIT)) 2>&1); rc=$$?; \
	  if [ $$rc -ne 0 ] || [ -n "$$out" ]; then echo "systemd-analyze verify $(SYSTEMD_UNIT) (exit $$rc):"; echo "$$out"; exit 1; fi; \
	  echo "systemd-analyze verify $(SYSTEMD_UNIT): ok"; \
	  mkdir -p "$$root/sysusers/etc" && \
	  out=$$(systemd-sysusers --root="$$root/sysusers" --dry-run "$(CURDIR)/deploy/systemd/replink.sysusers" 2>&1) || { echo "$$out"; exit 1; }; \
	  echo "systemd-sysusers --dry-run deploy/systemd/replink.sysusers: ok"; \
	fi
	cd deploy && $(GO) vet ./... && $(GO) test -count=1 ./...

# Regenerates deploy/kubernetes/monitoring/prometheusrule.yaml from
# dashboards/alerts.yml (deploy-check fails while they differ).
deploy-generate:
	cd deploy && $(GO) generate ./...

unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /test$$)

integration: setup
	$(GO) test -race -count=1 -timeout 12m ./test/...

# Benchmarks (not part of make test): Go benchmarks of the hot paths, then
# the end-to-end benchmarks against real mariadbd, stunnel and
# mariadb-binlog (tables, JSON and bench.png in bench/out/).
BENCH_REPORTS := ingest slaves latency small memory serve
bench: build
	./scripts/setup.sh --bench
	@mkdir -p bench/out
	$(GO) test -run '^$$' -bench . -benchmem ./binlog/ ./binlog/atrest/ ./tlsutil/ ./relay/ | tee bench/out/go-bench.txt
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
