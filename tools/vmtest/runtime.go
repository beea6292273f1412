package main

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// runtimeMarker is the function whose presence in a test binary says that
// its tests start containers (internal/containerdtest.Start). Only those
// binaries get the container runtime in their initramfs: it is about 100 MB,
// which the other packages' boots need not unpack.
const runtimeMarker = "github.com/vigilsec/vigil/internal/containerdtest.Start"

// Values of -containerd.
const (
	containerdAuto   = "auto"
	containerdAlways = "always"
	containerdNever  = "never"
)

// runtimeBinaries are the host commands (from Debian's containerd and runc
// packages) packed into the guest's /bin, where the tests' PATH finds them.
var runtimeBinaries = []string{"containerd", "ctr", "containerd-shim-runc-v2", "runc"}

// cniPlugins are the CNI plugins containerdtest's network uses (bridge with
// host-local addresses) and the loopback one containerd's CRI runs for every
// pod; they are packed at the same path as on the host.
var cniPlugins = []string{"bridge", "host-local", "loopback"}

// defaultCNIDir is where Debian's containernetworking-plugins puts them.
const defaultCNIDir = "/usr/lib/cni"

// libDirs are the folders the host's dynamic loader searches without an
// ld.so.cache, in its order; the guest gets the libraries at the same paths
// (real folders there, whatever the host's /lib symlinks).
var libDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}

// guestFile is a host file and where it goes in the guest.
type guestFile struct {
	Src, Dst string
}

// linksRuntime reports whether the Go binary at p contains runtimeMarker.
// Function names live in .gopclntab, which even a binary stripped of its
// symbol table keeps.
func linksRuntime(p string) (bool, error) {
	f, err := elf.Open(p)
	if err != nil {
		return false, fmt.Errorf("test binary %s: %w", p, err)
	}
	defer f.Close()
	sec := f.Section(".gopclntab")
	if sec == nil {
		return false, fmt.Errorf("test binary %s has no .gopclntab section: not a Go binary", p)
	}
	tab, err := sec.Data()
	if err != nil {
		return false, fmt.Errorf("test binary %s: read .gopclntab: %w", p, err)
	}
	return bytes.Contains(tab, []byte(runtimeMarker+"\x00")), nil
}

// wantRuntime decides from -containerd whether the guest gets the container
// runtime.
func wantRuntime(mode, bin string) (bool, error) {
	switch mode {
	case containerdAlways:
		return true, nil
	case containerdNever:
		return false, nil
	}
	return linksRuntime(bin)
}

// runtimeFiles lists what the guest needs to run containerd's CRI with runc:
// the binaries, the CNI plugins and every shared library they load (with the
// dynamic loader), found on the host through lookPath and libDirs.
func runtimeFiles(lookPath func(string) (string, error), cniDir string, libDirs []string) ([]guestFile, error) {
	var files []guestFile
	var elfs []string
	for _, b := range runtimeBinaries {
		p, err := lookPath(b)
		if err != nil {
			return nil, fmt.Errorf("container runtime: %w (scripts/setup-host.sh installs containerd and runc)", err)
		}
		files = append(files, guestFile{Src: p, Dst: "/bin/" + b})
		elfs = append(elfs, p)
	}
	for _, c := range cniPlugins {
		p := filepath.Join(cniDir, c)
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("CNI plugin: %w (scripts/setup-host.sh installs containernetworking-plugins)", err)
		}
		files = append(files, guestFile{Src: p, Dst: p})
		elfs = append(elfs, p)
	}
	libs, err := sharedLibraries(elfs, libDirs)
	if err != nil {
		return nil, err
	}
	return append(files, libs...), nil
}

// sharedLibraries resolves the dynamic loader and the libraries (and theirs,
// transitively) that the ELF files at paths need, as the loader would find
// them in dirs. Each comes once, the loader at its PT_INTERP path.
func sharedLibraries(paths []string, dirs []string) ([]guestFile, error) {
	var out []guestFile
	seen := map[string]bool{}
	queue := append([]string(nil), paths...)
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		interp, needed, err := dynamicNeeds(p)
		if err != nil {
			return nil, err
		}
		if interp != "" && !seen[interp] {
			seen[interp] = true
			if _, err := os.Stat(interp); err != nil {
				return nil, fmt.Errorf("%s: dynamic loader: %w", p, err)
			}
			out = append(out, guestFile{Src: interp, Dst: interp})
		}
		for _, lib := range needed {
			if seen[lib] {
				continue
			}
			seen[lib] = true
			found := findLibrary(lib, dirs)
			if found == "" {
				return nil, fmt.Errorf("%s needs %s, which is in none of %s", p, lib, strings.Join(dirs, ", "))
			}
			out = append(out, guestFile{Src: found, Dst: found})
			queue = append(queue, found)
		}
	}
	return out, nil
}

// dynamicNeeds reads an ELF file's interpreter (empty for a static one) and
// DT_NEEDED entries.
func dynamicNeeds(p string) (string, []string, error) {
	f, err := elf.Open(p)
	if err != nil {
		return "", nil, fmt.Errorf("read %s: %w", p, err)
	}
	defer f.Close()
	var interp string
	for _, prog := range f.Progs {
		if prog.Type != elf.PT_INTERP {
			continue
		}
		b, err := io.ReadAll(prog.Open())
		if err != nil {
			return "", nil, fmt.Errorf("read %s: interpreter: %w", p, err)
		}
		interp = strings.TrimRight(string(b), "\x00")
	}
	needed, err := f.ImportedLibraries()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return "", nil, fmt.Errorf("read %s: shared libraries: %w", p, err)
	}
	return interp, needed, nil
}

func findLibrary(name string, dirs []string) string {
	if strings.Contains(name, "/") {
		if _, err := os.Stat(name); err == nil {
			return name
		}
		return ""
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

// hostRuntimeFiles is runtimeFiles on this host.
func hostRuntimeFiles() ([]guestFile, error) {
	return runtimeFiles(exec.LookPath, defaultCNIDir, libDirs)
}
