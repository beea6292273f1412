package enforce_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/vigilsec/vigil/agent/agenttest"

	"github.com/vigilsec/vigil/agent"
)

// A program listed in --protect-binaries is not killed by a Sigkill whose
// selector matches every process; its event says so and the agent counts
// the skipped action in vigil_tracing_policy_enforcement_skipped_protected_total.
// The same program under another path is killed.
func TestPrivProtectBinariesFlag(t *testing.T) {
	self, err := os.Executable()
	agenttest.FatalIf(t, err)
	dir := t.TempDir()
	protected := filepath.Join(dir, "runtime-shim")
	agenttest.CopyExecutable(t, self, protected)
	plain := filepath.Join(dir, "plain")
	agenttest.CopyExecutable(t, self, plain)

	target := fmt.Sprintf("/vigil-protect-binaries-%d", os.Getpid())
	pdir := t.TempDir()
	agenttest.WritePolicy(t, pdir, "kill-open.yaml", agenttest.KillOnOpen("kill-open", target))
	h := agenttest.StartAgent(t, func(c *agent.Config) {
		c.Policies = []string{pdir}
		c.ProtectBinaries = []string{filepath.Join(dir, "runtime-*")}
	})
	h.WaitPolicy("kill-open")

	run := func(bin string) (int, bool) {
		cmd := exec.Command(bin, target)
		cmd.Env = append(os.Environ(), "VIGIL_TEST_HELPER=open")
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
				return cmd.Process.Pid, true
			}
		}
		agenttest.FatalIf(t, err)
		return cmd.Process.Pid, false
	}

	pid, killed := run(protected)
	if killed {
		t.Fatalf("%s, a protected binary, was killed", protected)
	}
	e := h.WaitFor("event of the protected binary", agenttest.KprobeOf("process_kprobe", pid, "kill-open"))
	if note := e.Str("process_kprobe.action_note"); e.Str("process_kprobe.action") != "KPROBE_ACTION_SIGKILL" ||
		note != "not taken: the process is protected (the agent, its parents, PID 1, a protected binary or a kernel thread); to act on it, name it exactly (matchBinaries In, matchPIDs In) and set the policy option allow-protected-enforcement" {
		t.Errorf("protected binary: action %q, note %q", e.Str("process_kprobe.action"), note)
	}
	if n := counterSum(t, h, "vigil_tracing_policy_enforcement_skipped_protected_total"); n != 1 {
		t.Errorf("vigil_tracing_policy_enforcement_skipped_protected_total = %v, want 1", n)
	}

	pid, killed = run(plain)
	if !killed {
		t.Errorf("%s, not protected, was not killed", plain)
	}
	h.WaitFor("event of the unprotected binary", agenttest.KprobeOf("process_kprobe", pid, "kill-open"))
	if n := counterSum(t, h, "vigil_tracing_policy_enforcement_skipped_protected_total"); n != 1 {
		t.Errorf("after the unprotected binary: vigil_tracing_policy_enforcement_skipped_protected_total = %v, want 1", n)
	}
}

// counterSum is the sum of a counter's series; -1 when the agent has no
// such metric.
func counterSum(t *testing.T, h *agenttest.Harness, name string) float64 {
	t.Helper()
	mfs, err := h.Metrics().Gather()
	agenttest.FatalIf(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			n := 0.0
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
			return n
		}
	}
	return -1
}

// gauge is a gauge's value; -1 when the agent has no such metric.
func gauge(t *testing.T, h *agenttest.Harness, name string) float64 {
	t.Helper()
	mfs, err := h.Metrics().Gather()
	agenttest.FatalIf(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

// A runtime installed after the agent started and a symbolic link an
// upgrade re-points to a new version are protected without a restart; the
// version the link pointed to before stays protected.
func TestPrivProtectBinariesInstalledLater(t *testing.T) {
	self, err := os.Executable()
	agenttest.FatalIf(t, err)
	dir := t.TempDir()
	versions := filepath.Join(dir, "versions")
	agenttest.FatalIf(t, os.Mkdir(versions, 0o755))
	agenttest.CopyExecutable(t, self, filepath.Join(versions, "shim-1"))
	shim := filepath.Join(dir, "shim")
	agenttest.FatalIf(t, os.Symlink("versions/shim-1", shim))
	plain := filepath.Join(dir, "plain")
	agenttest.CopyExecutable(t, self, plain)

	target := fmt.Sprintf("/vigil-protect-later-%d", os.Getpid())
	pdir := t.TempDir()
	agenttest.WritePolicy(t, pdir, "kill-open.yaml", agenttest.KillOnOpen("kill-open", target))
	h := agenttest.StartAgent(t, func(c *agent.Config) {
		c.Policies = []string{pdir}
		c.ProtectBinaries = []string{filepath.Join(dir, "runtime-*"), shim}
	})
	h.WaitPolicy("kill-open")
	waitProtected := func(want float64) {
		t.Helper()
		for deadline := time.Now().Add(agenttest.Timeout()); gauge(t, h, "vigil_protected_binaries") != want; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("vigil_protected_binaries = %v, want %v", gauge(t, h, "vigil_protected_binaries"), want)
			}
		}
	}
	waitProtected(2) // the link and its target

	installed := filepath.Join(dir, "runtime-new")
	agenttest.CopyExecutable(t, self, installed)
	waitProtected(3)
	// The upgrade: a new version beside the old, the link replaced by a
	// rename, as package managers do.
	agenttest.CopyExecutable(t, self, filepath.Join(versions, "shim-2"))
	agenttest.FatalIf(t, os.Symlink("versions/shim-2", shim+".new"))
	agenttest.FatalIf(t, os.Rename(shim+".new", shim))
	waitProtected(4)

	run := func(bin string) bool {
		t.Helper()
		cmd := exec.Command(bin, target)
		cmd.Env = append(os.Environ(), "VIGIL_TEST_HELPER=open")
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
				return true
			}
		}
		agenttest.FatalIf(t, err)
		return false
	}
	for _, bin := range []string{installed, shim, filepath.Join(versions, "shim-1")} {
		if run(bin) {
			t.Errorf("%s, protected since the start or since it appeared, was killed", bin)
		}
	}
	if !run(plain) {
		t.Errorf("%s, not protected, was not killed", plain)
	}
	if n := counterSum(t, h, "vigil_tracing_policy_enforcement_skipped_protected_total"); n != 3 {
		t.Errorf("vigil_tracing_policy_enforcement_skipped_protected_total = %v, want 3", n)
	}
}
