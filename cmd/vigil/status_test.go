package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Without an agent: status fails with a hint, version still prints this
// binary's build and says the agent is not reachable.
func TestStatusVersionWithoutAgent(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "vigil.sock")
	res := runVigil(t, nil, "status", "--socket", sock)
	if res.Code != 1 || !strings.Contains(res.Stderr, "no agent is listening on "+sock) {
		t.Errorf("status: exit %d, stderr %q", res.Code, res.Stderr)
	}
	res = runVigil(t, nil, "version", "--socket", sock)
	if res.Code != 0 || !strings.HasPrefix(res.Stdout, "vigil   dev\n") || !strings.Contains(res.Stdout, "\nagent   not reachable: no agent is listening on "+sock) {
		t.Errorf("version: exit %d, stdout %q, stderr %q", res.Code, res.Stdout, res.Stderr)
	}
}

// The version and commit the Makefile passes with -ldflags are what
// vigil version prints.
func TestVersionLdflags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the vigil binary")
	}
	mk, err := exec.Command("make", "-s", "-C", "../..", "-n", "build", "VERSION=v9.8.7", "COMMIT=0123456789ab").Output()
	if err != nil {
		t.Fatalf("make -n build: %v", err)
	}
	_, flags, ok := strings.Cut(string(mk), `-ldflags "`)
	flags, _, _ = strings.Cut(flags, `"`)
	if !ok || !strings.Contains(flags, "buildinfo.Version=v9.8.7") {
		t.Fatalf("make build passes no version: %s", mk)
	}
	bin := filepath.Join(t.TempDir(), "vigil")
	if out, err := exec.Command("go", "build", "-ldflags", flags, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v: %s", err, out)
	}
	out, err := exec.Command(bin, "version", "--socket", filepath.Join(t.TempDir(), "none")).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "vigil   v9.8.7\ncommit  0123456789ab\ngo      go") {
		t.Errorf("vigil version printed:\n%s", out)
	}
}
