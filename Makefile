# Vigil build and test entry points. `make test` is the whole suite: lint,
# unit tests, the Kubernetes API tier (a real etcd and kube-apiserver),
# privileged tests on the host kernel, and the same privileged tests inside
# qemu on Debian's 6.1 and 6.12 cloud kernels.

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
# Everything is built without cgo, as the agent ships: the tiers then share
# one build cache (the VM tier's static test binaries are the unit tier's,
# not a second compilation of every package).
export CGO_ENABLED := 0

empty :=
space := $(empty) $(empty)
comma := ,

.PHONY: all build generate lint test test-unit test-kube test-host test-vm setup setup-test setup-kube setup-vm test-tools run bench

all: build

# What `vigil version` prints: the version is the nearest tag (or "dev"),
# the commit the checkout's, with -dirty for uncommitted changes.
VERSION ?= $(shell git describe --tags --always --match 'v*' 2>/dev/null | grep '^v' || echo dev)
COMMIT  ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
LDFLAGS := -X github.com/vigilsec/vigil/internal/buildinfo.Version=$(VERSION) \
	-X github.com/vigilsec/vigil/internal/buildinfo.Commit=$(COMMIT)

build:
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o bin/vigil ./cmd/vigil

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
test: setup lint test-unit test-kube test-host test-vm

# What the tests use beyond the agent's own needs: Chromium for the web UI's
# pages, and the hubble CLI (built once from the cilium module into
# $(CACHE)/hubble, a few minutes) that the Hubble API tests drive.
setup-test: setup
	./scripts/setup-host.sh --browser
	CACHE=$(CACHE) ./scripts/hubble-cli.sh >/dev/null

# TestKube* need the API server of the Kubernetes tier: they run there.
test-unit: setup-test
	$(GO) test -count=1 -skip '^TestKube[A-Z]' ./...

# The Kubernetes API tier: etcd (Debian's etcd-server) and kube-apiserver,
# built once from the k8s.io/kubernetes module into $(CACHE)/kube (see
# scripts/kube-apiserver.sh; minutes from an empty Go build cache), run by
# the TestKube* tests of KUBE_PKGS (internal/kubetest). VIGIL_KUBE=1 makes
# a missing binary a failure, not a skip.
KUBE_PKGS ?= ./deploy ./identity/kube ./k8spolicies ./relay
setup-kube: setup
	./scripts/setup-host.sh --kube
	CACHE=$(CACHE) ./scripts/kube-apiserver.sh >/dev/null

test-kube: setup-kube test-tools
	VIGIL_KUBE=1 VIGIL_KUBE_APISERVER=$$(CACHE=$(CACHE) ./scripts/kube-apiserver.sh) \
		./bin/testsum -label kube -- $(GO) test -json -count=1 -run '^TestKube[A-Z]' $(KUBE_PKGS)

# Privileged tests on the host kernel, summed up per run by tools/testsum.
test-host: setup-test test-tools
	VIGIL_PRIVILEGED=1 ./bin/testsum -label host -- $(GO) test -json -count=1 $(PRIVRUN) $(PKGS)

# The same privileged tests inside qemu on each Debian kernel (see
# docs/testing.md), the kernels side by side, VM_P VMs at a time in all.
# Packages without a matching test never boot a VM. Each package's VM run
# has VM_TIMEOUT; a test still running then is named, with its goroutines.
VM_TIMEOUT ?= 12m
test-vm: setup-vm test-tools
	GO=$(GO) CACHE=$(CACHE) PKGS="$(PKGS)" VM_P=$(VM_P) VM_TIMEOUT=$(VM_TIMEOUT) \
		./scripts/test-vm.sh $(VM_KERNELS)

# qemu, busybox-static and the Debian kernels the VM tier boots.
setup-vm: setup
	./scripts/setup-host.sh --vm
	CACHE=$(CACHE) ./scripts/vm-kernels.sh $(VM_KERNELS)

test-tools:
	CGO_ENABLED=0 $(GO) build -o bin/ ./tools/vmtest ./tools/testsum

run: setup build
	./bin/vigil agent

# Overhead benchmarks (root, about 25 minutes on two cores): workloads with
# and without the agent, the agent's own costs, network policy latencies,
# the Go benchmarks and the overhead table again inside qemu on each of
# BENCH_VM_KERNELS (ratios only); prints the report and writes it into
# docs/benchmarks.md. BENCH_FLAGS=-quick for a short check of the harness
# (see bin/vigil-bench run -h); BENCH_VM_KERNELS= leaves the VM out.
BENCH_FLAGS      ?=
BENCH_VM_KERNELS ?= 6.12
bench: build test-tools
	./scripts/setup-host.sh --bench
	$(if $(strip $(BENCH_VM_KERNELS)),./scripts/setup-host.sh --vm && CACHE=$(CACHE) ./scripts/vm-kernels.sh $(BENCH_VM_KERNELS))
	CGO_ENABLED=0 $(GO) build -o bin/vigil-bench ./bench/cmd/vigil-bench
	./bin/vigil-bench run $(if $(strip $(BENCH_VM_KERNELS)),-vmtest bin/vmtest -vm-kernel $(subst $(space),$(comma),$(addprefix $(CACHE)/kernels/,$(BENCH_VM_KERNELS)))) $(BENCH_FLAGS)
