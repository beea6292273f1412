package main

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/internal/kerneltest"
)

func TestModuleName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/net/bridge/bridge.ko.xz": "bridge",
		"ip-vti.ko.zst":                  "ip_vti",
		"llc.ko":                         "llc",
		"veth":                           "veth",
		"nf-nat.ko.gz":                   "nf_nat",
	} {
		if got := moduleName(in); got != want {
			t.Errorf("moduleName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseModulesDep(t *testing.T) {
	in := `kernel/net/llc/llc.ko.xz:
kernel/net/802/stp.ko.xz: kernel/net/llc/llc.ko.xz
kernel/net/bridge/bridge.ko.xz: kernel/net/802/stp.ko.xz kernel/net/llc/llc.ko.xz

`
	got, err := parseModulesDep([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]moduleEntry{
		"llc":    {Path: "kernel/net/llc/llc.ko.xz", depsKnown: true},
		"stp":    {Path: "kernel/net/802/stp.ko.xz", Deps: []string{"llc"}, depsKnown: true},
		"bridge": {Path: "kernel/net/bridge/bridge.ko.xz", Deps: []string{"stp", "llc"}, depsKnown: true},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(moduleEntry{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := parseModulesDep([]byte("a.ko:\nno colon here\n")); err == nil || !strings.Contains(err.Error(), "modules.dep:2:") {
		t.Errorf("bad line: got error %v, want one naming modules.dep:2", err)
	}
}

func FuzzParseModulesDep(f *testing.F) {
	f.Add([]byte("kernel/a.ko: kernel/b.ko\nkernel/b.ko:\n"))
	f.Add([]byte(":"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseModulesDep(b)
		if err != nil {
			return
		}
		for name, e := range m {
			if name != moduleName(e.Path) {
				t.Errorf("entry %q has path %q", name, e.Path)
			}
		}
	})
}

func TestParseModinfo(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"license=GPL\x00depends=stp,llc\x00name=bridge\x00", []string{"stp", "llc"}},
		{"depends=\x00name=llc\x00", nil},
		{"name=veth\x00", nil},
		{"depends=nf-nat, ,x_tables", []string{"nf_nat", "x_tables"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, parseModinfo([]byte(tt.in))); diff != "" {
			t.Errorf("parseModinfo(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

// fakeModule returns a minimal ELF64 relocatable object whose .modinfo
// section says the module depends on deps.
func fakeModule(t *testing.T, name, deps string) []byte {
	t.Helper()
	modinfo := []byte("name=" + name + "\x00depends=" + deps + "\x00")
	shstrtab := []byte("\x00.modinfo\x00.shstrtab\x00")
	const hdrSize, shSize = 64, 64
	shoff := (hdrSize + len(modinfo) + len(shstrtab) + 7) &^ 7
	var b bytes.Buffer
	hdr := elf.Header64{
		Type: uint16(elf.ET_REL), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Shoff: uint64(shoff), Ehsize: hdrSize, Shentsize: shSize, Shnum: 3, Shstrndx: 2,
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(binary.Write(&b, binary.LittleEndian, hdr))
	b.Write(modinfo)
	b.Write(shstrtab)
	b.Write(make([]byte, shoff-b.Len()))
	for _, sh := range []elf.Section64{
		{},
		{Name: 1, Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC), Off: hdrSize, Size: uint64(len(modinfo)), Addralign: 1},
		{Name: 10, Type: uint32(elf.SHT_STRTAB), Off: uint64(hdrSize + len(modinfo)), Size: uint64(len(shstrtab)), Addralign: 1},
	} {
		must(binary.Write(&b, binary.LittleEndian, sh))
	}
	return b.Bytes()
}

func gzipped(t *testing.T, b []byte) []byte {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func baseNames(paths []string) []string {
	var out []string
	for _, p := range paths {
		out = append(out, filepath.Base(p))
	}
	return out
}

func TestResolveModulesDep(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "modules.dep"), `kernel/net/llc/llc.ko:
kernel/net/802/stp.ko: kernel/net/llc/llc.ko
kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko
kernel/drivers/net/veth.ko:
kernel/net/ipv4/ip-vti.ko.gz: kernel/net/ipv4/ip_tunnel.ko
kernel/a.ko: kernel/b.ko
kernel/b.ko: kernel/a.ko
`)
	writeFile(t, filepath.Join(dir, "modules.builtin"), "kernel/net/ipv4/ip_tunnel.ko\nkernel/net/ipv6/ipv6.ko\n")
	for _, m := range []string{"net/llc/llc.ko", "net/802/stp.ko", "net/bridge/bridge.ko", "drivers/net/veth.ko", "a.ko", "b.ko"} {
		writeFile(t, filepath.Join(dir, "kernel", m), "module "+moduleName(m))
	}
	writeFile(t, filepath.Join(dir, "kernel/net/ipv4/ip-vti.ko.gz"), string(gzipped(t, []byte("module ip_vti"))))

	ms, err := openModules(dir, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	got, err := ms.Resolve([]string{"veth", "bridge", "ip-vti", "ipv6", "llc"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"veth.ko", "llc.ko", "stp.ko", "bridge.ko", "ip_vti.ko"}
	if diff := cmp.Diff(want, baseNames(got)); diff != "" {
		t.Errorf("load order (-want +got):\n%s", diff)
	}
	for _, p := range got {
		b, err := os.ReadFile(p)
		if err != nil || string(b) != "module "+moduleName(p) {
			t.Errorf("%s holds %q, %v", p, b, err)
		}
	}

	for names, wantErr := range map[string]string{
		"nope": "module nope not found in " + dir,
		"a":    "dependency cycle",
	} {
		if _, err := ms.Resolve([]string{names}); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("Resolve(%s): got error %v, want one containing %q", names, err, wantErr)
		}
	}
}

func TestResolveModinfo(t *testing.T) {
	// Debian's packages have no modules.dep: dependencies come from
	// each module's .modinfo.
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "kernel/net/llc/llc.ko"), string(fakeModule(t, "llc", "")))
	writeFile(t, filepath.Join(dir, "kernel/net/802/stp.ko.gz"), string(gzipped(t, fakeModule(t, "stp", "llc"))))
	bridge := fakeModule(t, "bridge", "stp,llc")
	if _, err := exec.LookPath("xz"); err == nil {
		src := filepath.Join(t.TempDir(), "bridge.ko")
		writeFile(t, src, string(bridge))
		out, err := exec.Command("xz", "-c", src).Output()
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "kernel/net/bridge/bridge.ko.xz"), string(out))
	} else {
		t.Log("xz not installed; testing without an .xz module")
		writeFile(t, filepath.Join(dir, "kernel/net/bridge/bridge.ko"), string(bridge))
	}
	writeFile(t, filepath.Join(dir, "kernel/net/needs-missing.ko"), string(fakeModule(t, "needs_missing", "gone")))
	writeFile(t, filepath.Join(dir, "kernel/net/not-elf.ko"), "text")

	ms, err := openModules(dir, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	got, err := ms.Resolve([]string{"bridge"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"llc.ko", "stp.ko", "bridge.ko"}, baseNames(got)); diff != "" {
		t.Errorf("load order (-want +got):\n%s", diff)
	}
	if _, err := ms.Resolve([]string{"needs-missing"}); err == nil || !strings.Contains(err.Error(), "module gone (needed by needs_missing) not found") {
		t.Errorf("missing dependency: got error %v", err)
	}
	if _, err := ms.Resolve([]string{"not_elf"}); err == nil || !strings.Contains(err.Error(), "module not_elf: read ") {
		t.Errorf("not an ELF file: got error %v", err)
	}
}

// TestResolveDebianModules resolves the default modules in the kernels
// scripts/vm-kernels.sh fetched, when they are there.
func TestResolveDebianModules(t *testing.T) {
	dirs, _ := filepath.Glob("../../.cache/kernels/*/lib/modules/*")
	if len(dirs) == 0 {
		kerneltest.Skip(t, "no kernels in .cache/kernels (scripts/vm-kernels.sh fetches them)")
	}
	for _, dir := range dirs {
		ms, err := openModules(dir, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		got, err := ms.Resolve(splitList(defaultModules))
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if diff := cmp.Diff([]string{"veth.ko", "llc.ko", "stp.ko", "bridge.ko", "overlay.ko"}, baseNames(got)); diff != "" {
			t.Errorf("%s: load order (-want +got):\n%s", dir, diff)
		}
	}
}
