SHELL := /bin/bash
# ovpnd — see README.md. Every target works on a fresh Debian machine as root once
# .ci/install-deps has run (make test and make demo run it themselves).
GO        ?= go
BIN       := bin
PKGS      := ./...
# Packages whose goroutines deserve the race detector.
RACE_PKGS := ./engine/... ./session/... ./routing/... ./daemon/... ./dbus/...

.PHONY: all build test unit lint interop demo bench fuzz clean deps

all: build

build:
	$(GO) build -trimpath -o $(BIN)/ ./cmd/...

deps:
	./.ci/install-deps

# Unit tests (with every fuzz target's seed corpus), the race detector on the concurrent
# packages, then the interop suite against a real OpenVPN 2.6 server in network namespaces.
test: deps build
	$(GO) vet $(PKGS)
	$(GO) test -count=1 $(PKGS)
	$(GO) test -count=1 -race $(RACE_PKGS)
	$(MAKE) interop

unit:
	$(GO) test -count=1 $(PKGS)

interop: build
	OVPND_LAB=1 $(GO) test -count=1 -timeout 15m -v ./tests/... 2>&1 | tee $(BIN)/interop.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)' ; test $${PIPESTATUS[0]} -eq 0

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$$($(GO) env GOPATH)/bin/staticcheck $(PKGS)

demo: deps build
	./tests/demo.sh

bench: deps build
	$(GO) test -run '^$$' -bench . -benchmem ./engine/...
	./tests/bench.sh

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
