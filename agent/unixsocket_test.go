package agent

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestListenUnix checks that the control socket is 0600 however permissive
// the umask, and that the umask is given back.
func TestListenUnix(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "vigil.sock")
	ln, err := listenUnix(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket 0600", fi.Mode())
	}
	if got := syscall.Umask(0); got != 0 {
		t.Errorf("umask left at %04o, want it given back (0)", got)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("the owner cannot connect: %v", err)
	}
	c.Close()
	if _, err := listenUnix(filepath.Join(t.TempDir(), "open.sock"), 0o666); err == nil || !strings.Contains(err.Error(), "other users") {
		t.Errorf("a socket open to others: %v, want refused", err)
	}
}
