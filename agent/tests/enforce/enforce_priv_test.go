package enforce_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilsec/vigil/agent/agenttest"

	"github.com/vigilsec/vigil/agent"
	"github.com/vigilsec/vigil/internal/kerneltest"
	"github.com/vigilsec/vigil/kprobes"
)

// deny-shadow-read: the read fails with the configured errno; monitor mode
// lets it through and says what would have been done; switching back to
// enforce takes effect on the next call; removing the policy restores
// normal behaviour.
func TestPrivOverrideShadowRead(t *testing.T) {
	kerneltest.SkipIfNotSupported(t, kprobes.FeatureLSM)
	agenttest.EnsureFile(t, "/etc/shadow")
	dir := agenttest.ExamplePolicy(t, "deny-shadow-read", nil)
	h := agenttest.StartAgent(t, func(c *agent.Config) { c.Policies = []string{dir} })
	h.WaitPolicy("deny-shadow-read")

	errno, _, pid := agenttest.RunHelper(t, "open", nil, "/etc/shadow")
	if errno != int(syscall.EACCES) {
		t.Fatalf("open of /etc/shadow: errno %d, want EACCES (%d)", errno, syscall.EACCES)
	}
	e := h.WaitFor("override event", agenttest.KprobeOf("process_lsm", pid, "deny-shadow-read"))
	if e.Str("process_lsm.action") != "KPROBE_ACTION_OVERRIDE" || e.Get("process_lsm.monitor") != nil {
		t.Errorf("action %q monitor %v", e.Str("process_lsm.action"), e.Get("process_lsm.monitor"))
	}

	h.SetMode("deny-shadow-read", "monitor")
	errno, _, pid = agenttest.RunHelper(t, "open", nil, "/etc/shadow")
	if errno != 0 {
		t.Fatalf("monitor mode: open failed with errno %d", errno)
	}
	e = h.WaitFor("monitor event", agenttest.KprobeOf("process_lsm", pid, "deny-shadow-read"))
	if e.Str("process_lsm.action") != "KPROBE_ACTION_OVERRIDE" || e.Get("process_lsm.monitor") != true {
		t.Errorf("monitor event: action %q monitor %v", e.Str("process_lsm.action"), e.Get("process_lsm.monitor"))
	}

	h.SetMode("deny-shadow-read", "enforce")
	if errno, _, _ = agenttest.RunHelper(t, "open", nil, "/etc/shadow"); errno != int(syscall.EACCES) {
		t.Fatalf("back in enforce mode: errno %d, want EACCES", errno)
	}

	agenttest.FatalIf(t, os.Remove(filepath.Join(dir, "deny-shadow-read.yaml")))
	for deadline := time.Now().Add(agenttest.Timeout()); h.PolicyStatus("deny-shadow-read").State != ""; {
		if time.Now().After(deadline) {
			t.Fatal("policy not removed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if errno, _, _ = agenttest.RunHelper(t, "open", nil, "/etc/shadow"); errno != 0 {
		t.Errorf("after removal: errno %d, want 0", errno)
	}
}

// deny-exec-tmp: a binary under /tmp does not run; the same binary
// elsewhere does.
func TestPrivDenyExecTmp(t *testing.T) {
	kerneltest.SkipIfNotSupported(t, kprobes.FeatureLSM)
	dir := agenttest.ExamplePolicy(t, "deny-exec-tmp", nil)
	h := agenttest.StartAgent(t, func(c *agent.Config) { c.Policies = []string{dir} })
	h.WaitPolicy("deny-exec-tmp")

	tmpDir, err := os.MkdirTemp("/tmp", "vigil-exec-")
	agenttest.FatalIf(t, err)
	defer os.RemoveAll(tmpDir)
	inTmp := filepath.Join(tmpDir, "true")
	agenttest.CopyExecutable(t, "/bin/true", inTmp)
	err = agenttest.CommandAs(inTmp, "true").Run()
	if !errors.Is(err, syscall.EPERM) {
		t.Fatalf("exec from /tmp: %v, want EPERM", err)
	}
	h.WaitFor("deny event", func(e agenttest.Event) bool {
		if e.Str("process_lsm.policy_name") != "deny-exec-tmp" {
			return false
		}
		a := agenttest.ArgsOf(e, "process_lsm")
		b, _ := a[0]["linux_binprm_arg"].(map[string]any)
		return b != nil && b["path"] == inTmp && e.Str("process_lsm.action") == "KPROBE_ACTION_OVERRIDE"
	})

	elsewhere, err := os.MkdirTemp("/root", "vigil-exec-")
	agenttest.FatalIf(t, err)
	defer os.RemoveAll(elsewhere)
	ok := filepath.Join(elsewhere, "true")
	agenttest.CopyExecutable(t, "/bin/true", ok)
	if err := agenttest.CommandAs(ok, "true").Run(); err != nil {
		t.Errorf("exec outside /tmp: %v", err)
	}
}

// deny-mkdir-protected: fmod_ret on security_path_mkdir; the directory is
// not created.
func TestPrivDenyMkdir(t *testing.T) {
	kerneltest.SkipIfNotSupported(t, kprobes.FeatureFmodRet)
	agenttest.FatalIf(t, os.MkdirAll("/srv/protected", 0o755))
	dir := agenttest.ExamplePolicy(t, "deny-mkdir-protected", nil)
	h := agenttest.StartAgent(t, func(c *agent.Config) { c.Policies = []string{dir} })
	st := h.WaitPolicy("deny-mkdir-protected")
	if st.Hooks[0].Mechanism != kprobes.MechFmodRet {
		t.Errorf("mechanism %s, want fmod_ret", st.Hooks[0].Mechanism)
	}
	target := "/srv/protected/newdir"
	errno, _, pid := agenttest.RunHelper(t, "mkdir", nil, target)
	if errno != int(syscall.EPERM) {
		t.Errorf("mkdir: errno %d, want EPERM", errno)
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		os.Remove(target)
		t.Errorf("the directory exists: %v", err)
	}
	e := h.WaitFor("override event", agenttest.KprobeOf("process_kprobe", pid, "deny-mkdir-protected"))
	if e.Str("process_kprobe.action") != "KPROBE_ACTION_OVERRIDE" || e.Str("process_kprobe.mechanism") != "fmod_ret" {
		t.Errorf("event %s", e)
	}
	// Elsewhere mkdir works.
	other := filepath.Join(t.TempDir(), "fine")
	if errno, _, _ := agenttest.RunHelper(t, "mkdir", nil, other); errno != 0 {
		t.Errorf("mkdir elsewhere: errno %d", errno)
	}
}

// deny-module-load: finit_module is refused before the kernel even looks at
// the file (which is not a module: without the policy the kernel says
// ENOEXEC).
func TestPrivDenyModuleLoad(t *testing.T) {
	kerneltest.SkipIfNotSupported(t, kprobes.FeatureLSM)
	notModule := filepath.Join(t.TempDir(), "not-a-module.ko")
	agenttest.CopyExecutable(t, "/bin/true", notModule)
	before, _, _ := agenttest.RunHelper(t, "finit_module", nil, notModule)
	if before == int(syscall.ENOSYS) {
		kerneltest.Skip(t, "kernel without module support")
	}
	if before == int(syscall.EPERM) || before == 0 {
		t.Fatalf("without the policy finit_module gave errno %d; the test needs another errno to tell the policy's EPERM apart", before)
	}
	dir := agenttest.ExamplePolicy(t, "deny-module-load", nil)
	h := agenttest.StartAgent(t, func(c *agent.Config) { c.Policies = []string{dir} })
	h.WaitPolicy("deny-module-load")
	errno, _, pid := agenttest.RunHelper(t, "finit_module", nil, notModule)
	if errno != int(syscall.EPERM) {
		t.Errorf("finit_module with the policy: errno %d, want EPERM (without it: %d)", errno, before)
	}
	h.WaitFor("override event", agenttest.KprobeOf("process_lsm", pid, "deny-module-load"))
}

// deny-unprivileged-userns: an unprivileged process cannot create a user
// namespace; root still can. unshare(2) with CLONE_NEWUSER needs a single-
// threaded caller, so the unshare tool does it rather than a Go helper.
func TestPrivDenyUnprivilegedUserns(t *testing.T) {
	kerneltest.SkipIfNotSupported(t, kprobes.FeatureLSM)
	tool := kerneltest.NeedTool(t, "unshare")
	unshare := func(uid uint32) (string, error) {
		cmd := agenttest.CommandAs(tool, "unshare", "-U", "true")
		if uid != 0 {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := unshare(65534); err != nil {
		kerneltest.Skip(t, "this kernel refuses unprivileged user namespaces already: %v: %s", err, out)
	}
	dir := agenttest.ExamplePolicy(t, "deny-unprivileged-userns", nil)
	h := agenttest.StartAgent(t, func(c *agent.Config) { c.Policies = []string{dir} })
	h.WaitPolicy("deny-unprivileged-userns")
	out, err := unshare(65534)
	if err == nil || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("unprivileged unshare -U: %v: %q, want Operation not permitted", err, out)
	}
	h.WaitFor("override event", func(e agenttest.Event) bool {
		return e.Str("process_lsm.policy_name") == "deny-unprivileged-userns" && e.Str("process_lsm.action") == "KPROBE_ACTION_OVERRIDE"
	})
	if out, err := unshare(0); err != nil {
		t.Errorf("root unshare -U: %v: %s", err, out)
	}
}

// honeypot-sigkill works on every kernel: the process dies of SIGKILL, the
// exit event says so, and the policy event says the call itself completed.
// In monitor mode the process lives.
func TestPrivSigkillHoneypot(t *testing.T) {
	kerneltest.Require(t)
	dir := agenttest.ExamplePolicy(t, "honeypot-sigkill", nil)
	h := agenttest.StartAgent(t, func(c *agent.Config) { c.Policies = []string{dir} })
	h.WaitPolicy("honeypot-sigkill")
	const honeypot = "/root/.ssh/id_rsa.backup"

	_, killed, pid := agenttest.RunHelper(t, "open", nil, honeypot)
	if !killed {
		t.Fatal("the process that opened the honeypot was not killed")
	}
	e := h.WaitFor("sigkill event", agenttest.KprobeOf("process_kprobe", pid, "honeypot-sigkill"))
	if e.Str("process_kprobe.action") != "KPROBE_ACTION_SIGKILL" {
		t.Errorf("action %q", e.Str("process_kprobe.action"))
	}
	if note := e.Str("process_kprobe.action_note"); !strings.Contains(note, "after the call") {
		t.Errorf("action_note %q does not say the call completed", note)
	}
	exit := h.WaitFor("exit event", agenttest.ExitOf(pid))
	if exit.Str("process_exit.signal") != "SIGKILL" {
		t.Errorf("exit signal %q, want SIGKILL", exit.Str("process_exit.signal"))
	}

	// The agent's own calls are never acted on.
	f, _ := os.Open(honeypot)
	if f != nil {
		f.Close()
	}
	if got := h.All(func(e agenttest.Event) bool {
		return e.Str("process_kprobe.policy_name") == "honeypot-sigkill" && int(e.Num("process_kprobe.process.pid")) == os.Getpid()
	}); len(got) > 0 {
		t.Errorf("the agent's own open was reported: %v", got)
	}

	h.SetMode("honeypot-sigkill", "monitor")
	_, killed, pid = agenttest.RunHelper(t, "open", nil, honeypot)
	if killed {
		t.Fatal("killed in monitor mode")
	}
	e = h.WaitFor("monitor event", agenttest.KprobeOf("process_kprobe", pid, "honeypot-sigkill"))
	if e.Get("process_kprobe.monitor") != true || e.Str("process_kprobe.action") != "KPROBE_ACTION_SIGKILL" {
		t.Errorf("monitor event %s", e)
	}
}

// policy-mode: monitor in spec.options loads the policy in monitor mode.
func TestPrivPolicyModeOption(t *testing.T) {
	kerneltest.Require(t)
	dir := agenttest.ExamplePolicy(t, "honeypot-sigkill", func(s string) string {
		return strings.Replace(s, "spec:\n", "spec:\n  options:\n  - name: policy-mode\n    value: monitor\n", 1)
	})
	h := agenttest.StartAgent(t, func(c *agent.Config) { c.Policies = []string{dir} })
	if st := h.WaitPolicy("honeypot-sigkill"); st.Mode != "monitor" {
		t.Errorf("mode %q, want monitor", st.Mode)
	}
	if _, killed, _ := agenttest.RunHelper(t, "open", nil, "/etc/kubernetes/admin.conf.old"); killed {
		t.Error("killed although the policy is in monitor mode")
	}
}
