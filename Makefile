# Build and test entry points; CI runs `make test` from .ci/run.

GO      ?= go
BIN     := bin/neutrino
# Go sources to check with gofmt (testdata may hold deliberately odd files).
GOFILES  = $(shell find . -name '*.go' -not -path './.git/*' -not -path './vendor/*' -not -path '*/testdata/*')

.PHONY: all build test fmt-check vet gotest gotest-postgres up clean conformance

all: build

build:
	$(GO) build -o $(BIN) ./cmd/neutrino

test: fmt-check vet gotest

fmt-check:
	@files="$(GOFILES)"; [ -n "$$files" ] || exit 0; \
	unformatted="$$(gofmt -l $$files)" || exit 1; \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt: these files are not formatted (run gofmt -w):"; \
		echo "$$unformatted"; \
		exit 1; \
	fi

vet:
	$(GO) vet ./...

gotest:
	$(GO) test -count=1 -timeout 25m ./...
	$(MAKE) gotest-postgres

# The second pass: every internal package whose tests run API servers
# (they import internal/apitest) again, with the servers on PostgreSQL.
# internal/store runs its cases on both backends in the first pass already.
PG_PKGS = $(shell $(GO) list -e -f '{{.ImportPath}} {{join .TestImports " "}} {{join .XTestImports " "}}' ./internal/... | awk '$$0 ~ /internal\/apitest( |$$)/ {print $$1}')

gotest-postgres:
	NEUTRINO_TEST_DB=postgres $(GO) test -count=1 -timeout 25m $(PG_PKGS)

# The all-in-one: installs the Debian packages it runs with when missing
# (Open vSwitch, iproute2, busybox for the VMs' DHCP client), builds, runs.
up: build
	bash scripts/install-runtime-deps.sh
	$(BIN) up

# Tempest's network API tests against neutrino behind a real Keystone; fails
# when a test of conformance/expected-pass.txt does not pass. Needs root (it
# installs Debian packages when missing). See docs/conformance.md.
conformance:
	GO=$(GO) CONFORMANCE_COMMAND="make conformance" conformance/run.sh

clean:
	rm -rf bin
