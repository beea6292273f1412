package kprobes

import (
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// The kernel's BTF (/sys/kernel/btf/vmlinux, 5–6 MB) has to be indexed
// before any CO-RE relocation or attach-target lookup: about 0.1 s of CPU
// on a node, 1 s under emulation. Every load of this process shares one
// index, so the agent pays it once per start-up or reload instead of once
// per program, hook and feature probe.
var kernelTypes struct {
	mu    sync.Mutex
	cache *btf.Cache
}

// KernelTypes returns the shared cache of the kernel's BTF, for
// ebpf.CollectionOptions.Cache; Kernel() of it is the decoded spec.
func KernelTypes() *btf.Cache {
	kernelTypes.mu.Lock()
	defer kernelTypes.mu.Unlock()
	if kernelTypes.cache == nil {
		kernelTypes.cache = btf.NewCache()
	}
	return kernelTypes.cache
}

// KernelSpec is the kernel's decoded BTF from the shared cache.
func KernelSpec() (*btf.Spec, error) { return KernelTypes().Kernel() }

// ReleaseKernelTypes drops the shared cache, so that an idle agent does not
// hold the decoded types; the next load indexes the kernel's BTF anew.
// Loads running at the time keep the cache they were given.
func ReleaseKernelTypes() {
	kernelTypes.mu.Lock()
	kernelTypes.cache = nil
	kernelTypes.mu.Unlock()
}

// LoadCollection is ebpf.NewCollectionWithOptions with the shared cache of
// the kernel's BTF.
func LoadCollection(spec *ebpf.CollectionSpec, opts ebpf.CollectionOptions) (*ebpf.Collection, error) {
	if opts.Cache == nil {
		opts.Cache = KernelTypes()
	}
	return ebpf.NewCollectionWithOptions(spec, opts)
}
