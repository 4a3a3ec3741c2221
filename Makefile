# vgate — see README.md. Targets run as root where they touch namespaces.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/vgate
export PATH := /usr/local/go/bin:$(PATH)

# Packages with concurrency run under the race detector in `make test`.
RACE_PKGS := ./gateway/... ./peering/...

.PHONY: all build test unit lab demo bench lint deps fuzz clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/vgate

# Installs iproute2, iperf3, wireguard-tools, Debian's wireguard-go … when
# missing (root only; a no-op when everything is there).
deps:
	@bash scripts/deps.sh || [ "$$(id -u)" != 0 ]

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Everything: lint, unit tests (race detector on concurrent packages),
# fuzz seeds, benchmarks once (so they never rot) and the lab tests, which
# run real gateways in network namespaces (root; CI is root).
test: deps lint build
	$(GO) test -race -count=1 $(RACE_PKGS)
	VGATE_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 30m ./...
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x ./... >/dev/null

unit:
	$(GO) test -count=1 ./overlap/ ./peering/ ./gateway/... ./routing/...

lab: build
	VGATE_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -v -timeout 30m ./internal/e2e/

fuzz:
	$(GO) test -fuzz FuzzConflicts -fuzztime 30s ./overlap/
	$(GO) test -fuzz FuzzParse -fuzztime 30s ./gateway/config/
	$(GO) test -fuzz FuzzClampMSS -fuzztime 30s ./gateway/dataplane/

# Three networks in namespaces, three gateways, traffic between them.
demo: deps build
	$(GO) run ./internal/demo -vgate $(CURDIR)/$(BIN)

bench: deps build
	$(GO) test -count=1 -run '^$$' -bench . -benchmem ./gateway/... ./overlap/
	$(GO) run ./bench/throughput -vgate $(CURDIR)/$(BIN)

clean:
	rm -rf bin
