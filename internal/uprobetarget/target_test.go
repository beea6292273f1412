package uprobetarget

import (
	"debug/elf"
	"errors"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// The executable runs, returning a+b as its status, and its symbol table
// places Symbol at Offset.
func TestWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "target")
	if err := Write(path); err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range syms {
		if s.Name == Symbol {
			found = true
			if off := s.Value - f.Progs[0].Vaddr + f.Progs[0].Off; off != Offset {
				t.Errorf("%s at file offset %#x, want %#x", Symbol, off, Offset)
			}
		}
	}
	if !found {
		t.Errorf("no %s in %+v", Symbol, syms)
	}
	if runtime.GOARCH != "amd64" {
		t.Skip("the executable is x86-64")
	}
	err = exec.Command(path, "3", "4", "x").Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 7 {
		t.Errorf("target 3 4 x: %v, want exit status 7", err)
	}
}
