# vgate — see README.md. Targets run as root where they touch namespaces.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/vgate
export PATH := /usr/local/go/bin:$(PATH)
SHELL    := /bin/bash

# Packages with concurrency run under the race detector in `make test`.
RACE_PKGS := ./gateway/... ./peering/... ./routing/... ./ipsec/...

.PHONY: all build test unit lab demo bench bench-scale lint deps fuzz clean

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
	@# -v so that every skipped test shows with its reason (a lab test must
	@# not skip quietly in CI); only the RUN/PASS chatter is filtered out.
	VGATE_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -v -timeout 30m ./... 2>&1 | \
	  grep -v -E '^(=== (RUN|PAUSE|CONT|NAME)|\s*--- PASS|PASS$$)'; exit $${PIPESTATUS[0]}
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x ./... >/dev/null

unit:
	$(GO) test -count=1 ./overlap/ ./nat/ ./peering/ ./gateway/... ./routing/... ./ipsec/

lab: build
	VGATE_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -v -timeout 30m ./internal/e2e/

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzConflicts$$' -fuzztime 30s ./overlap/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 30s ./gateway/config/
	$(GO) test -run '^$$' -fuzz '^FuzzParseUpstream$$' -fuzztime 30s ./gateway/config/
	$(GO) test -run '^$$' -fuzz '^FuzzClampMSS$$' -fuzztime 30s ./gateway/dataplane/
	$(GO) test -run '^$$' -fuzz '^FuzzTranslate$$' -fuzztime 30s ./nat/
	$(GO) test -run '^$$' -fuzz '^FuzzPolicyCheck$$' -fuzztime 30s ./gateway/p2s/
	$(GO) test -run '^$$' -fuzz '^FuzzCheckProposal$$' -fuzztime 30s ./ipsec/
	$(GO) test -run '^$$' -fuzz '^FuzzParseNotify$$' -fuzztime 30s ./ipsec/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 30s ./gateway/relay/
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime 30s ./gateway/relay/
	$(GO) test -run '^$$' -fuzz '^FuzzLoadConfig$$' -fuzztime 30s ./gateway/relay/
	$(GO) test -run '^$$' -fuzz '^FuzzServerStream$$' -fuzztime 30s ./gateway/relay/
	$(GO) test -run '^$$' -fuzz '^FuzzClientStream$$' -fuzztime 30s ./gateway/relay/
	$(GO) test -run '^$$' -fuzz '^FuzzParsePublicKeys$$' -fuzztime 30s ./gateway/relay/
	$(GO) test -run '^$$' -fuzz '^FuzzDecide$$' -fuzztime 30s ./gateway/names/
	$(GO) test -run '^$$' -fuzz '^FuzzParseToken$$' -fuzztime 30s ./gateway/enroll/
	$(GO) test -run '^$$' -fuzz '^FuzzParseRequest$$' -fuzztime 30s ./gateway/enroll/
	$(GO) test -run '^$$' -fuzz '^FuzzParseResponse$$' -fuzztime 30s ./gateway/enroll/
	$(GO) test -run '^$$' -fuzz '^FuzzCheckAnswer$$' -fuzztime 30s ./gateway/laptop/
	$(GO) test -run '^$$' -fuzz '^FuzzParseProbe$$' -fuzztime 30s ./routing/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 30s ./routing/bfd/

# Three networks in namespaces, three gateways, traffic between them.
demo: deps build
	$(GO) run ./internal/demo -vgate $(CURDIR)/$(BIN)

bench: deps build
	$(GO) test -count=1 -run '^$$' -bench . -benchmem ./gateway/... ./overlap/ ./nat/
	$(GO) run ./bench/throughput -vgate $(CURDIR)/$(BIN)
	@# The relay, NAT rules and IPsec next to their baselines (direct UDP;
	@# vgate without rules; a stock strongSwan pair), each in one run.
	$(GO) run ./bench/throughput -vgate $(CURDIR)/$(BIN) -modes vgate,vgate-relay
	$(GO) run ./bench/throughput -vgate $(CURDIR)/$(BIN) -modes vgate,nat
	$(GO) run ./bench/throughput -vgate $(CURDIR)/$(BIN) -modes ipsec,swan
	$(GO) run ./bench/bgp -vgate $(CURDIR)/$(BIN)
	$(GO) run ./bench/frontdoor

# The hub-of-hubs at scale (bench/scale): N sites (default 101: core, 10
# hubs, 90 spokes), all BGP, in namespaces. Several GB of RAM and minutes;
# not part of `make test`. N=21 is a quick look. Ctrl-C cleans up.
N ?= 101
bench-scale: deps build
	$(GO) run ./bench/scale -vgate $(CURDIR)/$(BIN) -n $(N)

clean:
	rm -rf bin

# Release: static binaries for linux/amd64 and linux/arm64 with the version
# (git describe, or VERSION=...) linked in, plus SHA256SUMS and the systemd
# units (gateway, relay) with /usr/bin paths, in bin/release/.
RELEASE_DIR    := bin/release
RELEASE_ARCHES := amd64 arm64
NFPM           ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.43.0
# Debian versions start with a digit: v1.2.3 -> 1.2.3, a bare commit -> 0~g<commit>.
DEB_VERSION    := $(shell echo '$(VERSION)' | sed -e 's/^v//' -e 's/^\([^0-9]\)/0~g\1/' -e 's/-/~/g')

.PHONY: release deb
release:
	rm -rf $(RELEASE_DIR) && mkdir -p $(RELEASE_DIR)
	for arch in $(RELEASE_ARCHES); do \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' \
	    -o $(RELEASE_DIR)/vgate-linux-$$arch ./cmd/vgate || exit 1; \
	done
	for u in vgate vgate-relay; do \
	  sed 's#/usr/local/bin/vgate#/usr/bin/vgate#g' deploy/$$u.service > $(RELEASE_DIR)/$$u.service || exit 1; \
	done
	cd $(RELEASE_DIR) && sha256sum vgate-linux-* > SHA256SUMS
	@echo "release $(VERSION):" && ls -l $(RELEASE_DIR)

# Debian packages (one per architecture) built with nfpm from the release
# binaries; `dpkg-deb -I bin/release/vgate_*.deb` shows what is inside.
deb: release
	for arch in $(RELEASE_ARCHES); do \
	  sed -e 's/$${ARCH}/'$$arch'/g' -e 's/$${DEB_VERSION}/$(DEB_VERSION)/g' -e 's#$${RELEASE_DIR}#$(RELEASE_DIR)#g' \
	    deploy/deb/nfpm.yaml > $(RELEASE_DIR)/nfpm-$$arch.yaml && \
	  $(NFPM) package --config $(RELEASE_DIR)/nfpm-$$arch.yaml --packager deb --target $(RELEASE_DIR)/ || exit 1; \
	done
	cd $(RELEASE_DIR) && sha256sum vgate-linux-* *.deb > SHA256SUMS
	@ls -l $(RELEASE_DIR)/*.deb
