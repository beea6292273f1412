package tracingpolicies

import (
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
)

// uprobe checks one entry of spec.uprobes.
func (c *checker) uprobe(path string, u *UProbeSpec) *Hook {
	h := &Hook{Kind: HookUprobe, Path: path, Binary: u.Path, RefCtrOffsets: u.RefCtrOffsets}
	ok := true
	switch {
	case u.Path == "":
		c.errorf(path+".path", "missing: give the absolute path of the executable or library, such as /usr/bin/bash")
		ok = false
	case !filepath.IsAbs(u.Path):
		c.errorf(path+".path", "%q is not an absolute path", u.Path)
		ok = false
	}
	switch {
	case len(u.Addrs) > 0:
		c.unsupported(path+".addrs", "probes at virtual addresses are not implemented; give symbols or file offsets")
		ok = false
	case len(u.Symbols) > 0 && len(u.Offsets) > 0:
		c.errorf(path+".offsets", "a uprobe names symbols or file offsets, not both")
		ok = false
	case len(u.Symbols) == 0 && len(u.Offsets) == 0:
		c.errorf(path+".symbols", "missing: name the functions to probe (symbols) or their file offsets (offsets)")
		ok = false
	}
	seen := map[string]int{}
	for i, s := range u.Symbols {
		sp := fmt.Sprintf("%s.symbols[%d]", path, i)
		if s == "" {
			c.errorf(sp, "empty symbol")
			ok = false
			continue
		}
		if j, dup := seen[s]; dup {
			c.errorf(sp, "%q is already probed by symbols[%d]", s, j)
			ok = false
		}
		seen[s] = i
	}
	h.Functions, h.Offsets = u.Symbols, u.Offsets
	if n := max(len(u.Symbols), len(u.Offsets)); len(u.RefCtrOffsets) > 0 && len(u.RefCtrOffsets) != n {
		c.errorf(path+".refCtrOffsets", "%d refCtrOffsets for %d probes: give one per symbol or offset", len(u.RefCtrOffsets), n)
		ok = false
	}
	if u.BTFPath != "" {
		c.unsupported(path+".btfPath", "arguments are read from the registers of the C calling convention; BTF of user binaries is not used")
	}
	if len(u.Data) > 0 {
		c.unsupported(path+".data", "data sources other than the hook's arguments are not implemented")
	}
	if u.Return || u.ReturnArg != nil {
		c.unsupported(path+".return", "return probes (uretprobes) are not implemented")
	}
	if len(u.BinaryDigests) > 0 {
		c.unsupported(path+".binaryDigests", "probes are not conditioned on the binary's digest")
	}
	if u.Ignore != nil {
		c.unsupported(path+".ignore", "a policy that names a symbol the binary lacks is refused, never partly loaded")
	}
	h.Message = c.message(path+".message", u.Message)
	h.Tags = c.tags(path+".tags", u.Tags)
	h.Args = c.args(path, HookUprobe, u.Args)
	h.Selectors = c.selectors(path, h, u.Selectors)
	if !ok {
		return nil
	}
	return h
}

// openELF opens the binary of a uprobe or USDT hook on the node as an ELF
// file; on failure it reports the problem at the hook's path and returns
// nils. The caller closes f (which closes nothing else of ef's).
func (k *kernelChecker) openELF(h *Hook) (*os.File, *elf.File) {
	f, err := os.OpenFile(h.Binary, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			k.errorf(h.Path+".path", "%s: no such file", h.Binary)
		} else {
			k.errorf(h.Path+".path", "%v", err)
		}
		return nil, nil
	}
	// Reading a device or a pipe could block or never end.
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		k.errorf(h.Path+".path", "%s is not a regular file", h.Binary)
		f.Close()
		return nil, nil
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		k.errorf(h.Path+".path", "%s is not an ELF executable or library: %v", h.Binary, err)
		f.Close()
		return nil, nil
	}
	return f, ef
}

// uprobe checks, on the node, that a uprobe's binary exists and has its
// symbols, or is long enough for its offsets.
func (k *kernelChecker) uprobe(h *Hook) {
	f, ef := k.openELF(h)
	if ef == nil {
		return
	}
	defer f.Close()
	if len(h.Offsets) > 0 {
		fi, err := f.Stat()
		if err != nil {
			k.errorf(h.Path+".path", "%v", err)
			return
		}
		for i, off := range h.Offsets {
			if off >= uint64(fi.Size()) {
				k.errorf(fmt.Sprintf("%s.offsets[%d]", h.Path, i), "offset %#x is past the end of %s (%d bytes)", off, h.Binary, fi.Size())
			}
		}
		return
	}
	funcs := ELFFunctions(ef)
	if len(funcs) == 0 {
		k.errorf(h.Path+".path", "%s has no symbol table (stripped?): probe it by file offset", h.Binary)
		return
	}
	for i, s := range h.Functions {
		if funcs[s] {
			continue
		}
		names := make([]string, 0, len(funcs))
		for n := range funcs {
			names = append(names, n)
		}
		sort.Strings(names)
		k.errorf(fmt.Sprintf("%s.symbols[%d]", h.Path, i), "%s has no function %q%s", h.Binary, s, didYouMean(s, names))
	}
}

// ELFFunctions returns the names of the functions an ELF file defines, from
// its symbol table and its dynamic symbol table.
func ELFFunctions(ef *elf.File) map[string]bool {
	out := map[string]bool{}
	for _, get := range []func() ([]elf.Symbol, error){ef.Symbols, ef.DynamicSymbols} {
		syms, err := get()
		if err != nil {
			continue
		}
		for _, s := range syms {
			if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Section != elf.SHN_UNDEF && s.Name != "" {
				out[s.Name] = true
			}
		}
	}
	return out
}
