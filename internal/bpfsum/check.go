package bpfsum

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// CheckPackage fails t when the BPF objects committed in the current
// directory (a package's) no longer match their sources: the recorded hash
// of srcDir must match, and when clang-19 is installed the objects are
// rebuilt with the package's go:generate lines from genFile and compared byte
// for byte with the committed ones.
func CheckPackage(t *testing.T, srcDir, genFile string) {
	t.Helper()
	rec, err := Read("bpf_sources.sum")
	if err != nil {
		t.Fatalf("read bpf_sources.sum: %v (run `make generate`)", err)
	}
	hash, err := HashSources(srcDir, rec.Files...)
	if err != nil {
		t.Fatal(err)
	}
	if hash != rec.Sources {
		t.Fatalf("BPF sources of this package (%v under %s, and what they include) changed since its objects were generated (recorded %s, now %s): run `make generate` and commit the result", rec.Files, srcDir, rec.Sources, hash)
	}

	clang, err := ClangVersion()
	if err != nil {
		t.Logf("skipping the rebuild comparison: %v", err)
		return
	}
	if clang != rec.Clang {
		t.Fatalf("objects were built with %q but %q is installed: regenerate with the pinned compiler", rec.Clang, clang)
	}
	if lib, err := LibbpfVersion(); err != nil || lib != rec.Libbpf {
		t.Fatalf("objects were built with libbpf headers %s, installed: %s (%v)", rec.Libbpf, lib, err)
	}

	cmds, err := bpf2goCommands(genFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(cmds) == 0 {
		t.Fatalf("%s has no bpf2go go:generate line", genFile)
	}
	out := t.TempDir()
	pkg := os.Getenv("GOPACKAGE")
	if pkg == "" {
		wd, _ := os.Getwd()
		pkg = filepath.Base(wd)
	}
	for _, args := range cmds {
		args = append([]string{"tool", "bpf2go", "-output-dir", out}, args...)
		cmd := exec.Command("go", args...)
		cmd.Env = append(os.Environ(), "GOPACKAGE="+pkg, "GOFILE="+genFile)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("rebuild: go %s: %v\n%s", strings.Join(args, " "), err, b)
		}
	}
	built, _ := filepath.Glob(filepath.Join(out, "*_bpfel.*"))
	if len(built) == 0 {
		t.Fatal("rebuild produced no objects")
	}
	for _, f := range built {
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Base(f))
		if err != nil {
			t.Fatalf("committed %s: %v (run `make generate`)", filepath.Base(f), err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("committed %s differs from a fresh build of its sources: run `make generate`", filepath.Base(f))
		}
	}
}

// bpf2goCommands returns the arguments after "go tool bpf2go" of every
// go:generate line in file.
func bpf2goCommands(file string) ([][]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "//go:generate go tool bpf2go ")
		if !ok {
			continue
		}
		out = append(out, strings.Fields(rest))
	}
	return out, sc.Err()
}
