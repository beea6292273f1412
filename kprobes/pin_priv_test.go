package kprobes_test

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/kerneltest"
	. "github.com/vigilsec/vigil/kprobes"
)

// A pin directory outside any bpffs gets one mounted on it; one inside a
// bpffs is only created.
func TestPrivEnsurePinDir(t *testing.T) {
	kerneltest.Require(t)
	dir := filepath.Join(t.TempDir(), "pins")
	mounted, err := EnsurePinDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(dir, 0)
	if mounted != dir {
		t.Errorf("mounted %q, want a bpffs on %s", mounted, dir)
	}
	if ok, err := OnBPFFS(dir); !ok || err != nil {
		t.Errorf("%s on bpffs: %v %v", dir, ok, err)
	}
	sub := filepath.Join(dir, "a", "b")
	if mounted, err := EnsurePinDir(sub); err != nil || mounted != "" {
		t.Errorf("a directory inside the bpffs: mounted %q, %v; want only created", mounted, err)
	}
	if st, err := os.Stat(sub); err != nil || !st.IsDir() {
		t.Errorf("%s: %v", sub, err)
	}
}
