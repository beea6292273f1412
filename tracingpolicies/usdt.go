package tracingpolicies

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// USDTSite is one place of a USDT probe in the code: probes that a program
// fires from several places have one site each.
type USDTSite struct {
	// Offset is the file offset of the probe's instruction.
	Offset uint64
	// RefCtr is the file offset of the probe's semaphore, or 0.
	RefCtr uint64
	Args   []USDTArg
}

// USDTArgKind says where a USDT argument is.
type USDTArgKind uint8

const (
	USDTConst USDTArgKind = iota + 1
	USDTReg
	USDTDeref
)

// USDTArg is one argument of a USDT probe, as its note describes it
// ("-4@%edi", "8@-16(%rbp)", "4@$5").
type USDTArg struct {
	Kind   USDTArgKind
	Size   uint8
	Signed bool
	// Reg is the 64-bit register (rdi, rbp, ...) and RegOff its offset in
	// the kernel's struct pt_regs; Val is the constant or the displacement.
	Reg    string
	RegOff uint32
	Val    int64
}

// USDTProbe is one note of a file's .note.stapsdt section.
type USDTProbe struct {
	Provider, Name string
	Site           USDTSite
	// ArgErr is set when the note's arguments cannot be read by Vigil.
	ArgErr error
}

// x86-64 registers by the names of their parts, and their offsets in
// struct pt_regs.
var usdtRegs = func() map[string]struct {
	reg string
	off uint32
} {
	out := map[string]struct {
		reg string
		off uint32
	}{}
	for _, r := range []struct {
		names []string
		off   uint32
	}{
		{[]string{"r15", "r15d", "r15w", "r15b"}, 0}, {[]string{"r14", "r14d", "r14w", "r14b"}, 8},
		{[]string{"r13", "r13d", "r13w", "r13b"}, 16}, {[]string{"r12", "r12d", "r12w", "r12b"}, 24},
		{[]string{"rbp", "ebp", "bp", "bpl"}, 32}, {[]string{"rbx", "ebx", "bx", "bl", "bh"}, 40},
		{[]string{"r11", "r11d", "r11w", "r11b"}, 48}, {[]string{"r10", "r10d", "r10w", "r10b"}, 56},
		{[]string{"r9", "r9d", "r9w", "r9b"}, 64}, {[]string{"r8", "r8d", "r8w", "r8b"}, 72},
		{[]string{"rax", "eax", "ax", "al", "ah"}, 80}, {[]string{"rcx", "ecx", "cx", "cl", "ch"}, 88},
		{[]string{"rdx", "edx", "dx", "dl", "dh"}, 96}, {[]string{"rsi", "esi", "si", "sil"}, 104},
		{[]string{"rdi", "edi", "di", "dil"}, 112}, {[]string{"rip", "eip"}, 128}, {[]string{"rsp", "esp", "sp", "spl"}, 152},
	} {
		for _, n := range r.names {
			out[n] = struct {
				reg string
				off uint32
			}{r.names[0], r.off}
		}
	}
	return out
}()

// ParseUSDTArgs parses the argument string of a stapsdt note.
func ParseUSDTArgs(spec string) ([]USDTArg, error) {
	var out []USDTArg
	for _, f := range strings.Fields(spec) {
		a, err := parseUSDTArg(f)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

func parseUSDTArg(f string) (USDTArg, error) {
	sizeStr, loc, ok := strings.Cut(f, "@")
	if !ok {
		return USDTArg{}, fmt.Errorf("argument %q: no SIZE@ in front", f)
	}
	size, err := strconv.Atoi(sizeStr)
	if err != nil {
		return USDTArg{}, fmt.Errorf("argument %q: size %q is not a number", f, sizeStr)
	}
	a := USDTArg{Signed: size < 0}
	if size < 0 {
		size = -size
	}
	switch size {
	case 1, 2, 4, 8:
		a.Size = uint8(size)
	default:
		return USDTArg{}, fmt.Errorf("argument %q: size %d is not 1, 2, 4 or 8", f, size)
	}
	reg := func(name string) error {
		r, ok := usdtRegs[strings.TrimPrefix(name, "%")]
		if !strings.HasPrefix(name, "%") || !ok {
			return fmt.Errorf("argument %q: %q is not an x86-64 register", f, name)
		}
		a.Reg, a.RegOff = r.reg, r.off
		return nil
	}
	switch {
	case strings.HasPrefix(loc, "$"):
		v, err := strconv.ParseInt(loc[1:], 0, 64)
		if err != nil {
			return USDTArg{}, fmt.Errorf("argument %q: %q is not a constant", f, loc)
		}
		a.Kind, a.Val = USDTConst, v
	case strings.HasPrefix(loc, "%"):
		a.Kind = USDTReg
		if err := reg(loc); err != nil {
			return USDTArg{}, err
		}
	case strings.HasSuffix(loc, ")"):
		disp, inner, ok := strings.Cut(strings.TrimSuffix(loc, ")"), "(")
		if !ok || strings.Contains(inner, ",") {
			return USDTArg{}, fmt.Errorf("argument %q: only REGISTER and DISPLACEMENT(REGISTER) are read, not indexed addressing", f)
		}
		a.Kind = USDTDeref
		if disp != "" {
			v, err := strconv.ParseInt(disp, 0, 64)
			if err != nil {
				return USDTArg{}, fmt.Errorf("argument %q: displacement %q is not a number (symbolic addresses are not read)", f, disp)
			}
			a.Val = v
		}
		if err := reg(inner); err != nil {
			return USDTArg{}, err
		}
	default:
		return USDTArg{}, fmt.Errorf("argument %q: %q is not a register, a constant or a memory operand", f, loc)
	}
	return a, nil
}

// ReadUSDTProbes returns the USDT probes of an ELF file, with their
// addresses turned into file offsets.
func ReadUSDTProbes(ef *elf.File) ([]USDTProbe, error) {
	sec := ef.Section(".note.stapsdt")
	if sec == nil {
		return nil, nil
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf(".note.stapsdt: %w", err)
	}
	var base uint64
	hasBase := false
	if b := ef.Section(".stapsdt.base"); b != nil {
		base, hasBase = b.Addr, true
	}
	bo := ef.ByteOrder
	align4 := func(n uint32) uint32 { return (n + 3) &^ 3 }
	var out []USDTProbe
	for len(data) >= 12 {
		namesz, descsz, typ := bo.Uint32(data), bo.Uint32(data[4:]), bo.Uint32(data[8:])
		data = data[12:]
		if uint64(align4(namesz))+uint64(align4(descsz)) > uint64(len(data)) {
			return out, errors.New(".note.stapsdt: a note runs past the section")
		}
		name := data[:namesz]
		desc := data[align4(namesz) : align4(namesz)+descsz]
		data = data[align4(namesz)+align4(descsz):]
		if typ != 3 || string(bytes.TrimRight(name, "\x00")) != "stapsdt" || len(desc) < 24 {
			continue
		}
		pc, noteBase, sema := bo.Uint64(desc), bo.Uint64(desc[8:]), bo.Uint64(desc[16:])
		strs := strings.SplitN(string(desc[24:]), "\x00", 4)
		if len(strs) < 3 {
			continue
		}
		if hasBase {
			pc += base - noteBase
		}
		p := USDTProbe{Provider: strs[0], Name: strs[1]}
		var ok bool
		if p.Site.Offset, ok = fileOffset(ef, pc); !ok {
			continue
		}
		if sema != 0 {
			if hasBase {
				sema += base - noteBase
			}
			if p.Site.RefCtr, ok = fileOffset(ef, sema); !ok {
				p.ArgErr = fmt.Errorf("its semaphore at %#x is in no segment of the file", sema)
			}
		}
		if args, err := ParseUSDTArgs(strs[2]); err != nil {
			p.ArgErr = err
		} else {
			p.Site.Args = args
		}
		out = append(out, p)
	}
	return out, nil
}

// fileOffset turns a virtual address of an ELF file into its file offset.
func fileOffset(ef *elf.File, addr uint64) (uint64, bool) {
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD && addr >= p.Vaddr && addr < p.Vaddr+p.Filesz {
			return addr - p.Vaddr + p.Off, true
		}
	}
	return 0, false
}

// usdt checks one entry of spec.usdts.
func (c *checker) usdt(path string, u *UsdtSpec) *Hook {
	h := &Hook{Kind: HookUsdt, Path: path, Binary: u.Path, Provider: u.Provider, Probe: u.Name}
	ok := true
	switch {
	case u.Path == "":
		c.errorf(path+".path", "missing: give the absolute path of the executable or library")
		ok = false
	case !filepath.IsAbs(u.Path):
		c.errorf(path+".path", "%q is not an absolute path", u.Path)
		ok = false
	}
	if u.Provider == "" {
		c.errorf(path+".provider", "missing: name the probe's provider")
		ok = false
	}
	if u.Name == "" {
		c.errorf(path+".name", "missing: name the probe")
		ok = false
	}
	if u.BTFPath != "" {
		c.unsupported(path+".btfPath", "arguments are read where the probe's note says; BTF of user binaries is not used")
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

// usdt finds, on the node, the sites of a USDT probe and checks its
// arguments against the probe's note.
func (k *kernelChecker) usdt(h *Hook) {
	h.Sites = nil
	f, ef := k.openELF(h)
	if ef == nil {
		return
	}
	defer f.Close()
	probes, err := ReadUSDTProbes(ef)
	if err != nil {
		k.errorf(h.Path+".path", "%s: %v", h.Binary, err)
		return
	}
	var (
		sites []USDTSite
		names []string
	)
	for _, p := range probes {
		names = append(names, p.Provider+":"+p.Name)
		if p.Provider != h.Provider || p.Name != h.Probe {
			continue
		}
		if p.ArgErr != nil {
			k.errorf(h.Path, "USDT probe %s:%s of %s at %#x: %v", h.Provider, h.Probe, h.Binary, p.Site.Offset, p.ArgErr)
			return
		}
		sites = append(sites, p.Site)
	}
	if len(sites) == 0 {
		if len(probes) == 0 {
			k.errorf(h.Path+".name", "%s has no USDT probes (no .note.stapsdt section)", h.Binary)
			return
		}
		sort.Strings(names)
		k.errorf(h.Path+".name", "%s has no USDT probe %s:%s%s", h.Binary, h.Provider, h.Probe, didYouMean(h.Provider+":"+h.Probe, names))
		return
	}
	for i, a := range h.Args {
		for _, s := range sites {
			if int(a.Index) >= len(s.Args) {
				k.errorf(fmt.Sprintf("%s.args[%d].index", h.Path, i), "USDT probe %s:%s has %d arguments (indexes 0 to %d)", h.Provider, h.Probe, len(s.Args), len(s.Args)-1)
				return
			}
		}
	}
	h.Sites = sites
}
