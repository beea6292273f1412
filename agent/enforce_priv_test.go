package agent_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilsec/vigil/agent"
	"github.com/vigilsec/vigil/examples"
	"github.com/vigilsec/vigil/internal/kerneltest"
	"github.com/vigilsec/vigil/kprobes"
)

// examplePolicy writes the named example policy (optionally edited) into a
// directory of its own and returns the directory.
func examplePolicy(t *testing.T, name string, edit func(string) string) string {
	t.Helper()
	b, err := fs.ReadFile(examples.TracingPolicies, "tracingpolicy/"+name+".yaml")
	fatalIf(t, err)
	text := string(b)
	if edit != nil {
		text = edit(text)
	}
	dir := t.TempDir()
	writePolicy(t, dir, name+".yaml", text)
	return dir
}

// ensureFile creates path with content if it does not exist, and removes
// it at the end of the test if it created it.
func ensureFile(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		return
	}
	fatalIf(t, os.MkdirAll(filepath.Dir(path), 0o755))
	fatalIf(t, os.WriteFile(path, []byte("root:*:19000:0:99999:7:::\n"), 0o600))
	t.Cleanup(func() { os.Remove(path) })
}

func (h *harness) setMode(name, mode string) {
	h.t.Helper()
	fatalIf(h.t, agent.NewClient(h.socket).SetMode(context.Background(), name, mode))
}

// deny-shadow-read: the read fails with the configured errno; monitor mode
// lets it through and says what would have been done; switching back to
// enforce takes effect on the next call; removing the policy restores
// normal behaviour.
func TestPrivOverrideShadowRead(t *testing.T) {
	kerneltest.SkipIfNotSupported(t, kprobes.FeatureLSM)
	ensureFile(t, "/etc/shadow")
	dir := examplePolicy(t, "deny-shadow-read", nil)
	h := startAgent(t, func(c *agent.Config) { c.Policies = []string{dir} })
	h.waitPolicy("deny-shadow-read")

	errno, _, pid := runHelper(t, "open", nil, "/etc/shadow")
	if errno != int(syscall.EACCES) {
		t.Fatalf("open of /etc/shadow: errno %d, want EACCES (%d)", errno, syscall.EACCES)
	}
	e := h.waitFor("override event", kprobeOf("process_lsm", pid, "deny-shadow-read"))
	if e.str("process_lsm.action") != "KPROBE_ACTION_OVERRIDE" || e.get("process_lsm.monitor") != nil {
		t.Errorf("action %q monitor %v", e.str("process_lsm.action"), e.get("process_lsm.monitor"))
	}

	h.setMode("deny-shadow-read", "monitor")
	errno, _, pid = runHelper(t, "open", nil, "/etc/shadow")
	if errno != 0 {
		t.Fatalf("monitor mode: open failed with errno %d", errno)
	}
	e = h.waitFor("monitor event", kprobeOf("process_lsm", pid, "deny-shadow-read"))
	if e.str("process_lsm.action") != "KPROBE_ACTION_OVERRIDE" || e.get("process_lsm.monitor") != true {
		t.Errorf("monitor event: action %q monitor %v", e.str("process_lsm.action"), e.get("process_lsm.monitor"))
	}

	h.setMode("deny-shadow-read", "enforce")
	if errno, _, _ = runHelper(t, "open", nil, "/etc/shadow"); errno != int(syscall.EACCES) {
		t.Fatalf("back in enforce mode: errno %d, want EACCES", errno)
	}

	fatalIf(t, os.Remove(filepath.Join(dir, "deny-shadow-read.yaml")))
	for deadline := time.Now().Add(timeout()); h.policyStatus("deny-shadow-read").State != ""; {
		if time.Now().After(deadline) {
			t.Fatal("policy not removed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if errno, _, _ = runHelper(t, "open", nil, "/etc/shadow"); errno != 0 {
		t.Errorf("after removal: errno %d, want 0", errno)
	}
}

// deny-exec-tmp: a binary under /tmp does not run; the same binary
// elsewhere does.
func TestPrivDenyExecTmp(t *testing.T) {
	kerneltest.SkipIfNotSupported(t, kprobes.FeatureLSM)
	dir := examplePolicy(t, "deny-exec-tmp", nil)
	h := startAgent(t, func(c *agent.Config) { c.Policies = []string{dir} })
	h.waitPolicy("deny-exec-tmp")

	tmpDir, err := os.MkdirTemp("/tmp", "vigil-exec-")
	fatalIf(t, err)
	defer os.RemoveAll(tmpDir)
	inTmp := filepath.Join(tmpDir, "true")
	copyExecutable(t, "/bin/true", inTmp)
	err = commandAs(inTmp, "true").Run()
	if !errors.Is(err, syscall.EPERM) {
		t.Fatalf("exec from /tmp: %v, want EPERM", err)
	}
	h.waitFor("deny event", func(e ev) bool {
		if e.str("process_lsm.policy_name") != "deny-exec-tmp" {
			return false
		}
		a := argsOf(e, "process_lsm")
		b, _ := a[0]["linux_binprm_arg"].(map[string]any)
		return b != nil && b["path"] == inTmp && e.str("process_lsm.action") == "KPROBE_ACTION_OVERRIDE"
	})

	elsewhere, err := os.MkdirTemp("/root", "vigil-exec-")
	fatalIf(t, err)
	defer os.RemoveAll(elsewhere)
	ok := filepath.Join(elsewhere, "true")
	copyExecutable(t, "/bin/true", ok)
	if err := commandAs(ok, "true").Run(); err != nil {
		t.Errorf("exec outside /tmp: %v", err)
	}
}

// deny-mkdir-protected: fmod_ret on security_path_mkdir; the directory is
// not created.
func TestPrivDenyMkdir(t *testing.T) {
	kerneltest.SkipIfNotSupported(t, kprobes.FeatureFmodRet)
	fatalIf(t, os.MkdirAll("/srv/protected", 0o755))
	dir := examplePolicy(t, "deny-mkdir-protected", nil)
	h := startAgent(t, func(c *agent.Config) { c.Policies = []string{dir} })
	st := h.waitPolicy("deny-mkdir-protected")
	if st.Hooks[0].Mechanism != kprobes.MechFmodRet {
		t.Errorf("mechanism %s, want fmod_ret", st.Hooks[0].Mechanism)
	}
	target := "/srv/protected/newdir"
	errno, _, pid := runHelper(t, "mkdir", nil, target)
	if errno != int(syscall.EPERM) {
		t.Errorf("mkdir: errno %d, want EPERM", errno)
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		os.Remove(target)
		t.Errorf("the directory exists: %v", err)
	}
	e := h.waitFor("override event", kprobeOf("process_kprobe", pid, "deny-mkdir-protected"))
	if e.str("process_kprobe.action") != "KPROBE_ACTION_OVERRIDE" || e.str("process_kprobe.mechanism") != "fmod_ret" {
		t.Errorf("event %s", e)
	}
	// Elsewhere mkdir works.
	other := filepath.Join(t.TempDir(), "fine")
	if errno, _, _ := runHelper(t, "mkdir", nil, other); errno != 0 {
		t.Errorf("mkdir elsewhere: errno %d", errno)
	}
}

// deny-module-load: finit_module is refused before the kernel even looks at
// the file (which is not a module: without the policy the kernel says
// ENOEXEC).
func TestPrivDenyModuleLoad(t *testing.T) {
	kerneltest.SkipIfNotSupported(t, kprobes.FeatureLSM)
	notModule := filepath.Join(t.TempDir(), "not-a-module.ko")
	copyExecutable(t, "/bin/true", notModule)
	before, _, _ := runHelper(t, "finit_module", nil, notModule)
	if before == int(syscall.ENOSYS) {
		kerneltest.Skip(t, "kernel without module support")
	}
	if before == int(syscall.EPERM) || before == 0 {
		t.Fatalf("without the policy finit_module gave errno %d; the test needs another errno to tell the policy's EPERM apart", before)
	}
	dir := examplePolicy(t, "deny-module-load", nil)
	h := startAgent(t, func(c *agent.Config) { c.Policies = []string{dir} })
	h.waitPolicy("deny-module-load")
	errno, _, pid := runHelper(t, "finit_module", nil, notModule)
	if errno != int(syscall.EPERM) {
		t.Errorf("finit_module with the policy: errno %d, want EPERM (without it: %d)", errno, before)
	}
	h.waitFor("override event", kprobeOf("process_lsm", pid, "deny-module-load"))
}

// deny-unprivileged-userns: an unprivileged process cannot create a user
// namespace; root still can. unshare(2) with CLONE_NEWUSER needs a single-
// threaded caller, so the unshare tool does it rather than a Go helper.
func TestPrivDenyUnprivilegedUserns(t *testing.T) {
	kerneltest.SkipIfNotSupported(t, kprobes.FeatureLSM)
	tool := kerneltest.NeedTool(t, "unshare")
	unshare := func(uid uint32) (string, error) {
		cmd := commandAs(tool, "unshare", "-U", "true")
		if uid != 0 {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := unshare(65534); err != nil {
		kerneltest.Skip(t, "this kernel refuses unprivileged user namespaces already: %v: %s", err, out)
	}
	dir := examplePolicy(t, "deny-unprivileged-userns", nil)
	h := startAgent(t, func(c *agent.Config) { c.Policies = []string{dir} })
	h.waitPolicy("deny-unprivileged-userns")
	out, err := unshare(65534)
	if err == nil || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("unprivileged unshare -U: %v: %q, want Operation not permitted", err, out)
	}
	h.waitFor("override event", func(e ev) bool {
		return e.str("process_lsm.policy_name") == "deny-unprivileged-userns" && e.str("process_lsm.action") == "KPROBE_ACTION_OVERRIDE"
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
	dir := examplePolicy(t, "honeypot-sigkill", nil)
	h := startAgent(t, func(c *agent.Config) { c.Policies = []string{dir} })
	h.waitPolicy("honeypot-sigkill")
	const honeypot = "/root/.ssh/id_rsa.backup"

	_, killed, pid := runHelper(t, "open", nil, honeypot)
	if !killed {
		t.Fatal("the process that opened the honeypot was not killed")
	}
	e := h.waitFor("sigkill event", kprobeOf("process_kprobe", pid, "honeypot-sigkill"))
	if e.str("process_kprobe.action") != "KPROBE_ACTION_SIGKILL" {
		t.Errorf("action %q", e.str("process_kprobe.action"))
	}
	if note := e.str("process_kprobe.action_note"); !strings.Contains(note, "after the call") {
		t.Errorf("action_note %q does not say the call completed", note)
	}
	exit := h.waitFor("exit event", exitOf(pid))
	if exit.str("process_exit.signal") != "SIGKILL" {
		t.Errorf("exit signal %q, want SIGKILL", exit.str("process_exit.signal"))
	}

	// The agent's own calls are never acted on.
	f, _ := os.Open(honeypot)
	if f != nil {
		f.Close()
	}
	if got := h.all(func(e ev) bool {
		return e.str("process_kprobe.policy_name") == "honeypot-sigkill" && int(e.num("process_kprobe.process.pid")) == os.Getpid()
	}); len(got) > 0 {
		t.Errorf("the agent's own open was reported: %v", got)
	}

	h.setMode("honeypot-sigkill", "monitor")
	_, killed, pid = runHelper(t, "open", nil, honeypot)
	if killed {
		t.Fatal("killed in monitor mode")
	}
	e = h.waitFor("monitor event", kprobeOf("process_kprobe", pid, "honeypot-sigkill"))
	if e.get("process_kprobe.monitor") != true || e.str("process_kprobe.action") != "KPROBE_ACTION_SIGKILL" {
		t.Errorf("monitor event %s", e)
	}
}

// policy-mode: monitor in spec.options loads the policy in monitor mode.
func TestPrivPolicyModeOption(t *testing.T) {
	kerneltest.Require(t)
	dir := examplePolicy(t, "honeypot-sigkill", func(s string) string {
		return strings.Replace(s, "spec:\n", "spec:\n  options:\n  - name: policy-mode\n    value: monitor\n", 1)
	})
	h := startAgent(t, func(c *agent.Config) { c.Policies = []string{dir} })
	if st := h.waitPolicy("honeypot-sigkill"); st.Mode != "monitor" {
		t.Errorf("mode %q, want monitor", st.Mode)
	}
	if _, killed, _ := runHelper(t, "open", nil, "/etc/kubernetes/admin.conf.old"); killed {
		t.Error("killed although the policy is in monitor mode")
	}
}
