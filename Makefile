# Vigil build and test entry points. `make test` is the whole suite: lint,
# unit tests, privileged tests on the host kernel, and the same privileged
# tests inside qemu on Debian's 6.1 and 6.12 cloud kernels.

GO       ?= go
CACHE    ?= $(CURDIR)/.cache
PRIVRUN  := -run '^TestPriv'
# Packages the host and VM tiers run, kernels the VM tier boots (each a
# folder scripts/vm-kernels.sh fills under $(CACHE)/kernels), and how many
# packages (so VMs) run at once.
PKGS       ?= ./...
VM_KERNELS ?= 6.1 6.12
VM_P       ?= 2

export GOFLAGS := -buildvcs=false

.PHONY: all build generate lint test test-unit test-host test-vm setup setup-vm test-tools run bench

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

# Privileged tests on the host kernel, summed up per run by tools/testsum.
test-host: setup test-tools
	VIGIL_PRIVILEGED=1 ./bin/testsum -label host -- $(GO) test -json -count=1 $(PRIVRUN) $(PKGS)

# The same privileged tests inside qemu on each Debian kernel (see
# docs/testing.md). Packages without a matching test never boot a VM. All
# kernels run even when one fails; any failure fails the target.
test-vm: setup-vm test-tools
	@rc=0; for k in $(VM_KERNELS); do \
		echo "== VM tests on $$k ($$(readlink $(CACHE)/kernels/$$k || echo $(CACHE)/kernels/$$k))"; \
		VIGIL_PRIVILEGED=1 CGO_ENABLED=0 ./bin/testsum -label vm-$$k -- \
			$(GO) test -json -count=1 -p $(VM_P) $(PRIVRUN) \
			-exec "$(CURDIR)/bin/vmtest -kernel $(CACHE)/kernels/$$k" $(PKGS) || rc=1; \
	done; exit $$rc

# qemu, busybox-static and the Debian kernels the VM tier boots.
setup-vm: setup
	./scripts/setup-host.sh --vm
	CACHE=$(CACHE) ./scripts/vm-kernels.sh $(VM_KERNELS)

test-tools:
	CGO_ENABLED=0 $(GO) build -o bin/ ./tools/vmtest ./tools/testsum

run: setup build
	./bin/vigil agent

# Overhead benchmarks (root, about 20 minutes on two cores): workloads with
# and without the agent, the agent's own costs, network policy latencies and
# the Go benchmarks; prints the report and writes it into docs/benchmarks.md.
# BENCH_FLAGS=-quick for a short check of the harness (see bin/vigil-bench run -h).
BENCH_FLAGS ?=
bench: build
	./scripts/setup-host.sh --bench
	CGO_ENABLED=0 $(GO) build -o bin/vigil-bench ./bench/cmd/vigil-bench
	./bin/vigil-bench run $(BENCH_FLAGS)
