# Vigil build and test entry points. `make test` is the whole suite: lint,
# unit tests, privileged tests on the host kernel, and the same privileged
# tests inside qemu on Debian's 6.1 and 6.12 cloud kernels.

GO       ?= go
CACHE    ?= $(CURDIR)/.cache
PRIVRUN  := -run '^TestPriv'

export GOFLAGS := -buildvcs=false

.PHONY: all build generate lint test test-unit test-host test-vm setup run bench

all: build

build:
	CGO_ENABLED=0 $(GO) build -o bin/vigil ./cmd/vigil

setup:
	./scripts/setup-host.sh

# Regenerates vmlinux.h-based BPF objects and their Go bindings (needs clang-19).
generate: setup
	$(GO) generate ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '_bpfel.go$$')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# The whole suite, as CI runs it.
test: setup lint test-unit test-host test-vm

test-unit:
	$(GO) test -count=1 ./...

test-host: setup
	VIGIL_PRIVILEGED=1 $(GO) test -count=1 $(PRIVRUN) ./...

run: setup build
	./bin/vigil agent
