package keep_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vigilsec/vigil/agent"
	"github.com/vigilsec/vigil/agent/agenttest"
	"github.com/vigilsec/vigil/internal/kerneltest"
	"github.com/vigilsec/vigil/kprobes"
)

// pinDir is a pin directory of the test's own (an agent of another test may
// use the default one), removed at the end.
func pinDir(t *testing.T) string {
	kerneltest.Require(t)
	dir := fmt.Sprintf("/sys/fs/bpf/vigil-test-%d-%s", os.Getpid(), strings.ToLower(t.Name()))
	t.Cleanup(func() {
		if _, err := agent.CleanupPins(dir); err != nil {
			t.Error(err)
		}
	})
	return dir
}

// enforcement is what the tests' policies enforce: a Sigkill on the open of
// a path (on every kernel: the syscall tracepoint on the host's) and, where
// BPF LSM works, an Override (EACCES) of the open of a file.
type enforcement struct {
	dir        string // the policy directory
	kill, deny string
	lsm        bool
}

func newEnforcement(t *testing.T) *enforcement {
	e := &enforcement{dir: t.TempDir(), kill: fmt.Sprintf("/vigil-keep-%d", os.Getpid())}
	agenttest.WritePolicy(t, e.dir, "kill-open.yaml", agenttest.KillOnOpen("kill-open", e.kill))
	if kerneltest.Features(t).Has(kprobes.FeatureLSM) {
		e.lsm = true
		e.deny = filepath.Join(t.TempDir(), "secret")
		agenttest.FatalIf(t, os.WriteFile(e.deny, []byte("x"), 0o644))
		agenttest.WritePolicy(t, e.dir, "deny-open.yaml", fmt.Sprintf(`apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata: {name: deny-open}
spec:
  lsmhooks:
  - hook: file_open
    args:
    - {index: 0, type: file}
    selectors:
    - matchArgs:
      - {index: 0, operator: Equal, values: [%s]}
      matchActions: [{action: Override, argError: -13}]
`, e.deny))
	}
	return e
}

// check runs the targets and says whether each was enforced; it returns
// the helpers' pids (kill, deny).
func (e *enforcement) check(t *testing.T, when string, want bool) (int, int) {
	t.Helper()
	_, killed, killPID := agenttest.RunHelper(t, "open", nil, e.kill)
	if killed != want {
		t.Errorf("%s: the process that opened %s killed: %v, want %v", when, e.kill, killed, want)
	}
	if !e.lsm {
		return killPID, 0
	}
	errno, _, denyPID := agenttest.RunHelper(t, "open", nil, e.deny)
	if denied := errno == int(syscall.EACCES); denied != want {
		t.Errorf("%s: the open of %s: errno %d, want denied (EACCES): %v", when, e.deny, errno, want)
	}
	return killPID, denyPID
}

func generationDirs(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "gen-*"))
	agenttest.FatalIf(t, err)
	return m
}

func pins(t *testing.T, dir string) int {
	t.Helper()
	n, err := kprobes.CountPins(dir)
	agenttest.FatalIf(t, err)
	return n
}

// An agent with --keep-enforcement-on-exit is killed with SIGKILL: its
// policies still kill and deny. A restarted agent takes over: as many pins
// as before, the earlier run's gone, one event per action (the earlier
// programs no longer act), and the records the earlier programs wrote
// while no agent ran are counted as lost (no_agent). When it stops, the
// policies stay in force until the pins are cleaned up.
func TestPrivKeepAfterKill(t *testing.T) {
	dir := pinDir(t)
	enf := newEnforcement(t)
	first := agenttest.StartAgentProcess(t, agenttest.ProcessOptions{Policies: []string{enf.dir}, Keep: true, PinDir: dir})
	before := pins(t, dir)
	gens := generationDirs(t, dir)
	if before == 0 || len(gens) != 1 {
		t.Fatalf("%d pins in %d generation directories %v, want some in one", before, len(gens), gens)
	}
	pid, _ := enf.check(t, "with the agent", true)
	first.WaitEvent("kill event", agenttest.KprobeOf("process_kprobe", pid, "kill-open"))

	first.Kill()
	enf.check(t, "after kill -9 of the agent", true)
	if n := pins(t, dir); n != before {
		t.Errorf("%d pins after kill -9, want %d", n, before)
	}

	h := agenttest.StartAgent(t, func(c *agent.Config) {
		c.Policies = []string{enf.dir}
		c.KeepEnforcementOnExit = true
		c.BPFPinDir = dir
	})
	h.WaitPolicy("kill-open")
	if n := pins(t, dir); n != before {
		t.Errorf("%d pins after the restart, want %d", n, before)
	}
	if now := generationDirs(t, dir); len(now) != 1 || now[0] == gens[0] {
		t.Errorf("generation directories after the restart: %v, want one other than %v", now, gens)
	}
	kill1, deny1 := enf.check(t, "after the restart", true)
	kill2, deny2 := enf.check(t, "after the restart, again", true)
	// Records come in order through one ring buffer: once the second
	// call's event is in, a duplicate of the first would be too.
	h.WaitFor("kill event", agenttest.KprobeOf("process_kprobe", kill2, "kill-open"))
	if evs := h.All(agenttest.KprobeOf("process_kprobe", kill1, "kill-open")); len(evs) != 1 {
		t.Errorf("%d events for one killed process, want 1: %v", len(evs), evs)
	}
	if enf.lsm {
		h.WaitFor("deny event", agenttest.KprobeOf("process_lsm", deny2, "deny-open"))
		if evs := h.All(agenttest.KprobeOf("process_lsm", deny1, "deny-open")); len(evs) != 1 {
			t.Errorf("%d events for one denied open, want 1: %v", len(evs), evs)
		}
	}
	var matched uint64
	for _, hs := range h.PolicyStatus("kill-open").Hooks {
		matched += hs.Matched
	}
	if matched != 2 {
		t.Errorf("the restarted agent's kill-open hook matched %d calls, want 2", matched)
	}
	if n := lost(t, h, "no_agent"); n < 1 {
		t.Errorf(`vigil_events_lost_total{reason="no_agent"} = %v, want at least 1 (the kill while no agent ran)`, n)
	}

	// A clean stop with the flag keeps the enforcement; the clean-up ends it.
	h.Stop()
	enf.check(t, "after the restarted agent stopped", true)
	n, err := agent.CleanupPins(dir)
	agenttest.FatalIf(t, err)
	if n != before {
		t.Errorf("--cleanup-pins removed %d pins, want %d", n, before)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s after the clean-up: %v, want it removed", dir, err)
	}
	enf.check(t, "after the clean-up", false)
}

// SIGTERM with --keep-enforcement-on-exit keeps the enforcement; an agent
// started without the flag removes the pins once its own policies are in
// force (no gap) and, when it stops, nothing enforces.
func TestPrivKeepStopThenFlagOff(t *testing.T) {
	dir := pinDir(t)
	enf := newEnforcement(t)
	first := agenttest.StartAgentProcess(t, agenttest.ProcessOptions{Policies: []string{enf.dir}, Keep: true, PinDir: dir})
	first.Stop()
	if pins(t, dir) == 0 {
		t.Fatal("no pins after SIGTERM")
	}
	enf.check(t, "after SIGTERM", true)

	h := agenttest.StartAgent(t, func(c *agent.Config) {
		c.Policies = []string{enf.dir}
		c.BPFPinDir = dir
	})
	h.WaitPolicy("kill-open")
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s with the flag off: %v, want it removed", dir, err)
	}
	enf.check(t, "with an agent without the flag", true)
	h.Stop()
	enf.check(t, "after that agent stopped", false)
}

func lost(t *testing.T, h *agenttest.Harness, reason string) float64 {
	t.Helper()
	mfs, err := h.Metrics().Gather()
	agenttest.FatalIf(t, err)
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "vigil_events_lost_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}
