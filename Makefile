# steady: the two commands of the README are "make run" and "make test".

export PATH := /usr/local/go/bin:$(PATH)
GO          ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.1.0-dev)
LDFLAGS     := -X github.com/steady-ha/steady/internal/version.Version=$(VERSION)

.PHONY: all build run test unit lint bench deps clean

all: build

deps:
	@./scripts/deps

build: deps
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/steady ./cmd/steady

# Build and start a single-node agent in development mode (data and socket
# under ./.steady). It runs in the foreground; stop it with Ctrl-C.
run: build
	@echo "Starting steady in development mode. In another shell:"
	@echo "  export STEADY_SOCKET=$(CURDIR)/.steady/steady.sock PATH=$(CURDIR)/bin:\$$PATH"
	@echo "  steady status"
	./bin/steady agent --dev

# Every test: formatting, vet, staticcheck, then all tests with the race
# detector (root-only tests run when root, as in CI).
test: deps lint
	$(GO) test -race -count=1 -timeout 20m ./...

lint: deps
	@bad=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$bad" ]; then echo "gofmt would change:"; echo "$$bad"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# Benchmarks: package benchmarks and the whole-scenario ones in bench/.
bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 3s ./internal/...
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./bench/

clean:
	rm -rf bin .steady
