SHELL := /bin/bash
# ovpnd — see README.md. Every target works on a fresh Debian machine as root once
# .ci/install-deps has run (make test and make demo run it themselves).
GO        ?= go
BIN       := bin
PKGS      := ./...
# Packages whose goroutines deserve the race detector.
RACE_PKGS := ./engine/... ./session/... ./routing/... ./daemon/... ./dbus/...

.PHONY: all build test unit lint interop demo bench bench-faults bench-rekey fuzz clean deps deb

all: build

# Static binaries without cgo, as packaging/deb/build.sh ships them: no dynamic loader or libc
# start-up, and no shared libraries resident (docs/architecture.md, "Handshake time").
build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ ./cmd/...

deps:
	./.ci/install-deps

# bin/ovpnd_VERSION_amd64.deb (version from git describe), checked with lintian.
deb:
	@mkdir -p $(BIN)
	@rm -f $(BIN)/ovpnd_*.deb
	GO=$(GO) packaging/deb/build.sh $(BIN)
	lintian --fail-on error,warning $(BIN)/ovpnd_*.deb

# Unit tests (with every fuzz target's seed corpus), the race detector on the concurrent
# packages, the package (lintian-checked), then the interop suite against a real OpenVPN 2.6
# server in network namespaces, and the system test: that package installed into a booted
# Debian 12 (tests/system; its debootstrapped root is cached in /var/cache/ovpnd-test).
test: deps build
	$(GO) vet $(PKGS)
	$(GO) test -count=1 $(PKGS)
	$(GO) test -count=1 -race $(RACE_PKGS)
	$(MAKE) deb
	$(MAKE) interop OVPND_DEB="$$(ls $(CURDIR)/$(BIN)/ovpnd_*.deb)"

unit:
	$(GO) test -count=1 $(PKGS)

# The full verbose log goes to bin/interop.log; the console gets the result lines, plus the
# log's tail when something failed.
interop: build
	@OVPND_LAB=1 OVPND_DEB="$(OVPND_DEB)" $(GO) test -count=1 -timeout 15m -v ./tests/... > $(BIN)/interop.log 2>&1; rc=$$?; \
	  grep -E '^(\s*--- |PASS|FAIL|ok|panic)' $(BIN)/interop.log; \
	  if [ $$rc -ne 0 ]; then echo "--- tail of $(BIN)/interop.log:"; tail -150 $(BIN)/interop.log; fi; exit $$rc

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$$($(GO) env GOPATH)/bin/staticcheck $(PKGS)

demo: deps build
	./tests/demo.sh

bench: deps build
	$(GO) test -run '^$$' -bench . -benchmem ./engine/...
	./tests/bench.sh

# Client memory: RSS across rekeys under traffic (OpenVPN's client vs ovpnd run), and one
# daemon with 10 sessions vs 10 OpenVPN client processes (tests/bench-memory.sh).
.PHONY: bench-memory
bench-memory: deps build
	./tests/bench-memory.sh

# Handshakes over a lossy, reordering link (tests/lab/cmd/lossy), ovpnd vs OpenVPN's client.
bench-faults: deps build
	./tests/bench-faults.sh

# Data stalls around rekeys at 200 Mbit/s (tests/bench-rekey.sh), ovpnd vs OpenVPN's client.
bench-rekey: deps build
	./tests/bench-rekey.sh

# FUZZTIME=30s make fuzz runs each fuzz target for that long.
FUZZTIME ?= 10s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf $(BIN)
