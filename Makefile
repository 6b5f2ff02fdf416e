# Build and test entry points; CI runs `make test` from .ci/run.

GO      ?= go
BIN     := bin/neutrino
# Go sources to check with gofmt (testdata may hold deliberately odd files).
GOFILES  = $(shell find . -name '*.go' -not -path './.git/*' -not -path './vendor/*' -not -path '*/testdata/*')

.PHONY: all build test fmt-check vet gotest up clean

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

up: build
	$(BIN) up

clean:
	rm -rf bin
