package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Without an agent, the commands that change its policies say that no
// agent listens (exit 1); a bad file is refused before any agent is asked.
func TestPolicyRuntimeWithoutAgent(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "vigil.sock")
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte(`apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: unshare
spec:
  tracepoints:
  - subsystem: syscalls
    event: sys_enter_unshare
`), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: x\nspec:\n  kprobez: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"policy", "add", "--socket", sock, "--log-level", "error", good},
		{"policy", "delete", "--socket", sock, "unshare"},
		{"policy", "enable", "--socket", sock, "unshare"},
		{"policy", "disable", "--socket", sock, "unshare"},
	} {
		res := runVigil(t, nil, args...)
		if res.Code != 1 || !strings.Contains(res.Stderr, "no agent is listening on "+sock) {
			t.Errorf("vigil %v: exit %d, stderr %q", args, res.Code, res.Stderr)
		}
	}
	res := runVigil(t, nil, "policy", "add", "--socket", sock, "--log-level", "error", bad)
	if res.Code != 1 || !strings.HasPrefix(res.Stdout, bad+":6: spec.kprobez: unknown field") || !strings.Contains(res.Stderr, bad+": not valid; nothing was loaded") {
		t.Errorf("add of a bad file: exit %d, stdout %q, stderr %q", res.Code, res.Stdout, res.Stderr)
	}
	res = runVigil(t, nil, "policy", "add", "--socket", sock, filepath.Join(dir, "missing.yaml"))
	if res.Code != 1 || !strings.Contains(res.Stderr, "missing.yaml: no such file or directory") {
		t.Errorf("add of a missing file: exit %d, stderr %q", res.Code, res.Stderr)
	}
}
