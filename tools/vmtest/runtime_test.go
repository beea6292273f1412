package main

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/internal/containerdtest"
)

// elfWithSection is a minimal ELF file holding one section.
func elfWithSection(t *testing.T, name string, data []byte) []byte {
	t.Helper()
	shstrtab := []byte("\x00" + name + "\x00.shstrtab\x00")
	const hdrSize, shSize = 64, 64
	shoff := (hdrSize + len(data) + len(shstrtab) + 7) &^ 7
	var b bytes.Buffer
	hdr := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Shoff: uint64(shoff), Ehsize: hdrSize, Shentsize: shSize, Shnum: 3, Shstrndx: 2,
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	if err := binary.Write(&b, binary.LittleEndian, hdr); err != nil {
		t.Fatal(err)
	}
	b.Write(data)
	b.Write(shstrtab)
	b.Write(make([]byte, shoff-b.Len()))
	for _, sh := range []elf.Section64{
		{},
		{Name: 1, Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC), Off: hdrSize, Size: uint64(len(data)), Addralign: 1},
		{Name: uint32(len(name) + 2), Type: uint32(elf.SHT_STRTAB), Off: uint64(hdrSize + len(data)), Size: uint64(len(shstrtab)), Addralign: 1},
	} {
		if err := binary.Write(&b, binary.LittleEndian, sh); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// The marker is the real name of containerdtest.Start, and this test binary,
// which refers to it, is recognised as one that starts containers.
func TestLinksRuntimeThisBinary(t *testing.T) {
	if got := runtime.FuncForPC(reflect.ValueOf(containerdtest.Start).Pointer()).Name(); got != runtimeMarker {
		t.Fatalf("containerdtest.Start is %q, runtimeMarker says %q", got, runtimeMarker)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ok, err := linksRuntime(self)
	if err != nil || !ok {
		t.Errorf("linksRuntime(this test binary) = %v, %v; want true", ok, err)
	}
}

func TestLinksRuntime(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name    string
		file    []byte
		want    bool
		wantErr string
	}{
		{"linked", elfWithSection(t, ".gopclntab", []byte("\x00main.main\x00"+runtimeMarker+"\x00x")), true, ""},
		{"a longer name", elfWithSection(t, ".gopclntab", []byte(runtimeMarker+"Later\x00")), false, ""},
		{"not linked", elfWithSection(t, ".gopclntab", []byte("main.main\x00")), false, ""},
		{"not Go", elfWithSection(t, ".text", []byte(runtimeMarker+"\x00")), false, "has no .gopclntab section: not a Go binary"},
		{"not ELF", []byte("#!/bin/sh\nexec true\n"), false, "bad magic"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-"))
			writeFile(t, p, string(c.file))
			got, err := linksRuntime(p)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), p) {
					t.Errorf("got %v, %v; want an error naming %s and saying %q", got, err, p, c.wantErr)
				}
				return
			}
			if err != nil || got != c.want {
				t.Errorf("got %v, %v; want %v", got, err, c.want)
			}
		})
	}
}

func TestWantRuntime(t *testing.T) {
	plain := filepath.Join(t.TempDir(), "plain.test")
	writeFile(t, plain, string(elfWithSection(t, ".gopclntab", []byte("main.main\x00"))))
	for mode, want := range map[string]bool{containerdAuto: false, containerdAlways: true, containerdNever: false} {
		if got, err := wantRuntime(mode, plain); err != nil || got != want {
			t.Errorf("wantRuntime(%s, plain) = %v, %v; want %v", mode, got, err, want)
		}
	}
	// never does not even read the binary.
	if got, err := wantRuntime(containerdNever, "/nonexistent"); err != nil || got {
		t.Errorf("wantRuntime(never, missing) = %v, %v", got, err)
	}
}

func TestValidateContainerd(t *testing.T) {
	c := &config{Kernel: "k", Memory: 1024, CPUs: 1, Containerd: "sometimes"}
	err := c.Validate()
	if err == nil || err.Error() != `-containerd: "sometimes" is none of auto, always, never` {
		t.Errorf("got %v", err)
	}
}

// hostDynamic returns a dynamically linked host program with its loader and
// C library, or skips.
func hostDynamic(t *testing.T) (prog, interp, libc string) {
	t.Helper()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh on the host")
	}
	prog, _ = filepath.EvalSymlinks(sh)
	interp, needed, err := dynamicNeeds(prog)
	if err != nil || interp == "" || !containsString(needed, "libc.so.6") {
		t.Skipf("%s is not a dynamically linked glibc program (%q, %v, %v)", prog, interp, needed, err)
	}
	libc = findLibrary("libc.so.6", libDirs)
	if libc == "" {
		t.Skipf("libc.so.6 in none of %v", libDirs)
	}
	return prog, interp, libc
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func TestSharedLibraries(t *testing.T) {
	prog, interp, libc := hostDynamic(t)
	got, err := sharedLibraries([]string{prog, prog}, libDirs)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, f := range got {
		if f.Src != f.Dst {
			t.Errorf("%s would be packed at %s, want the same path", f.Src, f.Dst)
		}
		seen[f.Dst]++
	}
	for _, want := range []string{interp, libc} {
		if seen[want] != 1 {
			t.Errorf("%s packed %d times, want once; got %+v", want, seen[want], got)
		}
	}
	if seen[prog] != 0 {
		t.Errorf("the program itself is among its libraries: %+v", got)
	}

	// Libraries come from the first folder that has them, and theirs are
	// followed from there.
	dir := t.TempDir()
	b, err := os.ReadFile(libc)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "libc.so.6"), string(b))
	got, err = sharedLibraries([]string{prog}, append([]string{dir}, libDirs...))
	if err != nil {
		t.Fatal(err)
	}
	if !containsFile(got, filepath.Join(dir, "libc.so.6")) || containsFile(got, libc) {
		t.Errorf("libc not taken from %s first: %+v", dir, got)
	}

	// A library found nowhere is named, with where it was looked for.
	empty := t.TempDir()
	_, err = sharedLibraries([]string{prog}, []string{empty})
	if err == nil || !strings.Contains(err.Error(), prog+" needs libc.so.6, which is in none of "+empty) {
		t.Errorf("got %v, want an error naming libc.so.6 and %s", err, empty)
	}
}

func containsFile(fs []guestFile, p string) bool {
	for _, f := range fs {
		if f.Dst == p {
			return true
		}
	}
	return false
}

// A static binary brings no libraries.
func TestSharedLibrariesStatic(t *testing.T) {
	static := filepath.Join(t.TempDir(), "static")
	writeFile(t, static, string(elfWithSection(t, ".gopclntab", nil)))
	got, err := sharedLibraries([]string{static}, libDirs)
	if err != nil || len(got) != 0 {
		t.Errorf("got %+v, %v; want nothing", got, err)
	}
}

func TestRuntimeFiles(t *testing.T) {
	prog, interp, libc := hostDynamic(t)
	cni := t.TempDir()
	for _, c := range cniPlugins {
		b, err := os.ReadFile(prog)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(cni, c), string(b))
	}
	bins := t.TempDir()
	lookPath := func(name string) (string, error) {
		p := filepath.Join(bins, name)
		if err := os.Link(prog, p); err != nil && !errors.Is(err, os.ErrExist) {
			b, _ := os.ReadFile(prog)
			writeFile(t, p, string(b))
		}
		return p, nil
	}
	got, err := runtimeFiles(lookPath, cni, libDirs)
	if err != nil {
		t.Fatal(err)
	}
	var dsts []string
	for _, f := range got {
		dsts = append(dsts, f.Dst)
	}
	want := []string{"/bin/containerd", "/bin/ctr", "/bin/containerd-shim-runc-v2", "/bin/runc",
		filepath.Join(cni, "bridge"), filepath.Join(cni, "host-local"), filepath.Join(cni, "loopback")}
	if diff := cmp.Diff(want, dsts[:len(want)]); diff != "" {
		t.Errorf("binaries (-want +got):\n%s", diff)
	}
	if got[0].Src != filepath.Join(bins, "containerd") {
		t.Errorf("containerd packed from %s, want where lookPath found it", got[0].Src)
	}
	if !containsFile(got, interp) || !containsFile(got, libc) {
		t.Errorf("loader %s or %s missing: %v", interp, libc, dsts)
	}
}

func TestRuntimeFilesMissing(t *testing.T) {
	prog, _, _ := hostDynamic(t)
	noRunc := func(name string) (string, error) {
		if name == "runc" {
			return "", &exec.Error{Name: name, Err: exec.ErrNotFound}
		}
		return prog, nil
	}
	_, err := runtimeFiles(noRunc, t.TempDir(), libDirs)
	if err == nil || !strings.Contains(err.Error(), `"runc": executable file not found in $PATH (scripts/setup-host.sh installs containerd and runc)`) {
		t.Errorf("without runc: %v", err)
	}
	all := func(string) (string, error) { return prog, nil }
	cni := t.TempDir()
	_, err = runtimeFiles(all, cni, libDirs)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(cni, "bridge")) || !strings.Contains(err.Error(), "containernetworking-plugins") {
		t.Errorf("without CNI plugins: %v", err)
	}
}

// With the runtime, the image holds its files where the guest looks for
// them and the files containerd copies into sandboxes, and the init first
// moves the root to a mount runc can pivot_root from. Without it, neither.
func TestImageWriteRuntime(t *testing.T) {
	host := t.TempDir()
	busybox := filepath.Join(host, "busybox")
	writeFile(t, busybox, "busybox binary")
	bin := filepath.Join(host, "pkg.test")
	writeFile(t, bin, "test binary")
	runc := filepath.Join(host, "usr", "sbin", "runc")
	writeFile(t, runc, "runc binary")
	libc := filepath.Join(host, "lib", "libc.so.6")
	writeFile(t, libc, "libc")

	base := image{Busybox: busybox, Binary: bin, WorkDir: filepath.Join(host, "pkg"), Token: "t"}
	withRT := base
	withRT.Runtime = []guestFile{{Src: runc, Dst: "/bin/runc"}, {Src: libc, Dst: "/lib/x86_64-linux-gnu/libc.so.6"}}
	files := func(im *image) map[string]string {
		var buf bytes.Buffer
		if err := im.write(&buf); err != nil {
			t.Fatal(err)
		}
		entries, err := readCPIO(buf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, e := range entries {
			out[e.Name] = e.Data
		}
		return out
	}
	got := files(&withRT)
	for name, want := range map[string]string{
		"bin/runc":                       "runc binary",
		"lib/x86_64-linux-gnu/libc.so.6": "libc",
		"etc/hosts":                      "127.0.0.1\tlocalhost\n::1\tlocalhost\n",
		"etc/resolv.conf":                "",
		"vmtest/pkg.test":                "test binary",
	} {
		if g, ok := got[name]; !ok || g != want {
			t.Errorf("%s = %q (present %v), want %q", name, g, ok, want)
		}
	}
	init := got["init"]
	move := "/bin/busybox mount --bind / /.vmtest-root && cd /.vmtest-root &&\n\t\t/bin/busybox mount --move . / && export vmtest_moved=1 && exec /bin/busybox chroot . /init"
	if !strings.HasPrefix(init, "#!/bin/busybox sh\nif [ -z \"$vmtest_moved\" ]; then\n") || !strings.Contains(init, move) {
		t.Errorf("init does not start by moving the root:\n%s", init)
	}
	if i, j := strings.Index(init, "chroot . /init"), strings.Index(init, "mount -t proc proc /proc"); i < 0 || j < i {
		t.Errorf("init mounts proc before moving the root:\n%s", init)
	}
	if !strings.Contains(init, `[ "$vmtest_moved" = 1 ] || note "cannot move the root`) {
		t.Errorf("init does not report a failed move:\n%s", init)
	}

	plain := files(&base)
	for _, name := range []string{"bin/runc", "etc/hosts", "etc/resolv.conf"} {
		if _, ok := plain[name]; ok {
			t.Errorf("%s packed without the runtime", name)
		}
	}
	if strings.Contains(plain["init"], "vmtest_moved") {
		t.Errorf("init moves the root without the runtime:\n%s", plain["init"])
	}
}
