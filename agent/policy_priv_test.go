package agent_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/vigilsec/vigil/agent"
	"github.com/vigilsec/vigil/examples"
	"github.com/vigilsec/vigil/internal/kerneltest"
	"github.com/vigilsec/vigil/kprobes"
)

// runHelper runs the test binary as a helper process doing one operation
// and returns the errno it saw. killed reports that it died of SIGKILL.
func runHelper(t *testing.T, op string, cred *syscall.Credential, args ...string) (errno int, killed bool, pid int) {
	t.Helper()
	self, err := os.Executable()
	fatalIf(t, err)
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), "VIGIL_TEST_HELPER="+op)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	out, err := cmd.Output()
	pid = cmd.Process.Pid
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return 0, true, pid
		}
		t.Fatalf("helper %s: %v: %s", op, err, ee.Stderr)
	}
	fatalIf(t, err)
	s, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "errno=")
	if !ok {
		t.Fatalf("helper %s printed %q", op, out)
	}
	n, err := strconv.Atoi(s)
	fatalIf(t, err)
	return n, false, pid
}

// writePolicy writes a policy file into dir.
func writePolicy(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	fatalIf(t, os.WriteFile(p, []byte(text), 0o644))
	return p
}

// kprobeOf matches the policy event of pid from policy.
func kprobeOf(kind string, pid int, policy string) func(ev) bool {
	return func(e ev) bool {
		return e.get(kind) != nil && int(e.num(kind+".process.pid")) == pid && e.str(kind+".policy_name") == policy
	}
}

func argsOf(e ev, kind string) []map[string]any {
	list, _ := e.get(kind + ".args").([]any)
	var out []map[string]any
	for _, a := range list {
		if m, ok := a.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// policyStatus returns the running agent's status of a policy.
func (h *harness) policyStatus(name string) agent.PolicyStatus {
	h.t.Helper()
	list, err := agent.NewClient(h.socket).Policies(context.Background())
	fatalIf(h.t, err)
	for _, p := range list {
		if p.Name == name {
			return p
		}
	}
	return agent.PolicyStatus{}
}

// waitPolicy waits until a policy is loaded (or failed, which fails t).
func (h *harness) waitPolicy(name string) agent.PolicyStatus {
	h.t.Helper()
	deadline := time.Now().Add(timeout())
	for time.Now().Before(deadline) {
		st := h.policyStatus(name)
		switch st.State {
		case "loaded":
			return st
		case "error":
			h.t.Fatalf("policy %s did not load: %s", name, st.Error)
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.t.Fatalf("policy %s not loaded within %v", name, timeout())
	return agent.PolicyStatus{}
}

const openatPrefixPolicy = `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: openat-watched
spec:
  kprobes:
  - call: sys_openat
    syscall: true
    message: "watched file opened"
    args:
    - index: 1
      type: string
      label: filename
    - index: 2
      type: int
      label: flags
    selectors:
    - matchArgs:
      - index: 1
        operator: Prefix
        values: ["%s/"]
`

// A syscall hook with a Prefix filter reports matching opens with path and
// flags, and nothing else — on every kernel (tracepoints on the host).
func TestPrivSyscallPrefix(t *testing.T) {
	kerneltest.Require(t)
	dir := t.TempDir()
	watched := filepath.Join(dir, "watched")
	other := filepath.Join(dir, "other")
	fatalIf(t, os.MkdirAll(watched, 0o755))
	fatalIf(t, os.MkdirAll(other, 0o755))
	fatalIf(t, os.WriteFile(filepath.Join(watched, "a"), []byte("x"), 0o644))
	fatalIf(t, os.WriteFile(filepath.Join(other, "b"), []byte("x"), 0o644))
	pol := writePolicy(t, t.TempDir(), "p.yaml", fmt.Sprintf(openatPrefixPolicy, watched))

	h := startAgent(t, func(c *agent.Config) { c.Policies = []string{pol} })
	st := h.waitPolicy("openat-watched")
	_, _, pidA := runHelper(t, "open", nil, filepath.Join(watched, "a"))
	_, _, pidB := runHelper(t, "open", nil, filepath.Join(other, "b"))

	e := h.waitFor("openat event", kprobeOf("process_kprobe", pidA, "openat-watched"))
	args := argsOf(e, "process_kprobe")
	if len(args) != 2 || args[0]["string_arg"] != filepath.Join(watched, "a") || args[0]["label"] != "filename" {
		t.Errorf("args = %v", args)
	}
	if flags, ok := args[1]["int_arg"].(float64); !ok || int(flags)&syscall.O_CLOEXEC == 0 {
		t.Errorf("flags arg = %v, want O_RDONLY|O_CLOEXEC as os.Open passes", args[1])
	}
	if got := e.str("process_kprobe.function_name"); got != kprobes.SyscallSymbol("openat") {
		t.Errorf("function_name = %q", got)
	}
	if got := e.str("process_kprobe.action"); got != "KPROBE_ACTION_POST" {
		t.Errorf("action = %q", got)
	}
	if e.str("process_kprobe.mechanism") != string(st.Hooks[0].Mechanism) || e.str("process_kprobe.message") != "watched file opened" {
		t.Errorf("mechanism %q (policy list says %s), message %q", e.str("process_kprobe.mechanism"), st.Hooks[0].Mechanism, e.str("process_kprobe.message"))
	}
	if _, ok := h.find(time.Second, kprobeOf("process_kprobe", pidB, "openat-watched")); ok {
		t.Error("an open outside the prefix was reported")
	}
}

// A kernel-function hook with a file argument (VM kernels: kprobes).
func TestPrivKernelFunctionFileArg(t *testing.T) {
	kerneltest.SkipIfNotSupported(t, kprobes.FeatureKprobe)
	dir := t.TempDir()
	target := filepath.Join(dir, "secret")
	fatalIf(t, os.WriteFile(target, []byte("x"), 0o600))
	pol := writePolicy(t, t.TempDir(), "p.yaml", fmt.Sprintf(`apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: file-open-kfunc
spec:
  kprobes:
  - call: security_file_open
    syscall: false
    args:
    - index: 0
      type: file
    selectors:
    - matchArgs:
      - index: 0
        operator: Equal
        values: ["%s"]
`, target))
	h := startAgent(t, func(c *agent.Config) { c.Policies = []string{pol} })
	h.waitPolicy("file-open-kfunc")
	_, _, pid := runHelper(t, "open", nil, target)
	e := h.waitFor("security_file_open event", kprobeOf("process_kprobe", pid, "file-open-kfunc"))
	args := argsOf(e, "process_kprobe")
	fa, _ := args[0]["file_arg"].(map[string]any)
	if fa == nil || fa["path"] != target {
		t.Errorf("file_arg = %v, want path %s", args, target)
	}
	if e.str("process_kprobe.function_name") != "security_file_open" {
		t.Errorf("function_name %q", e.str("process_kprobe.function_name"))
	}
}

// An LSM hook (VM kernels: BPF LSM) reports the file opened.
func TestPrivLSMFileOpen(t *testing.T) {
	kerneltest.SkipIfNotSupported(t, kprobes.FeatureLSM)
	dir := t.TempDir()
	target := filepath.Join(dir, "lsm-watched")
	fatalIf(t, os.WriteFile(target, []byte("x"), 0o600))
	pol := writePolicy(t, t.TempDir(), "p.yaml", fmt.Sprintf(`apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: lsm-open
spec:
  lsmhooks:
  - hook: file_open
    args:
    - index: 0
      type: file
    selectors:
    - matchArgs:
      - index: 0
        operator: Prefix
        values: ["%s"]
`, target))
	h := startAgent(t, func(c *agent.Config) { c.Policies = []string{pol} })
	if st := h.waitPolicy("lsm-open"); st.Hooks[0].Mechanism != kprobes.MechLSM {
		t.Errorf("mechanism %s, want lsm", st.Hooks[0].Mechanism)
	}
	_, _, pid := runHelper(t, "open", nil, target)
	e := h.waitFor("process_lsm event", kprobeOf("process_lsm", pid, "lsm-open"))
	fa, _ := argsOf(e, "process_lsm")[0]["file_arg"].(map[string]any)
	if fa == nil || fa["path"] != target {
		t.Errorf("file_arg %v", fa)
	}
}

// matchBinaries In and NotIn, switched by editing the watched policy file:
// the change applies live.
func TestPrivMatchBinariesAndHotReload(t *testing.T) {
	kerneltest.Require(t)
	dir := t.TempDir()
	bins := t.TempDir()
	catA, catB := filepath.Join(bins, "cat-a"), filepath.Join(bins, "cat-b")
	copyExecutable(t, "/bin/cat", catA)
	copyExecutable(t, "/bin/cat", catB)
	target := filepath.Join(dir, "f")
	fatalIf(t, os.WriteFile(target, []byte("x\n"), 0o644))
	policyDir := t.TempDir()
	policy := func(op string) string {
		return fmt.Sprintf(`apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: bins
spec:
  kprobes:
  - call: sys_openat
    syscall: true
    args:
    - index: 1
      type: string
    selectors:
    - matchArgs:
      - index: 1
        operator: Equal
        values: ["%s"]
      matchBinaries:
      - operator: %s
        values: ["%s"]
`, target, op, catA)
	}
	writePolicy(t, policyDir, "bins.yaml", policy("In"))
	h := startAgent(t, func(c *agent.Config) { c.Policies = []string{policyDir} })
	h.waitPolicy("bins")
	cat := func(bin string) int {
		cmd := commandAs(bin, "cat", target)
		fatalIf(t, cmd.Run())
		return cmd.Process.Pid
	}
	a, b := cat(catA), cat(catB)
	h.waitFor("open by cat-a (In)", kprobeOf("process_kprobe", a, "bins"))
	if _, ok := h.find(time.Second, kprobeOf("process_kprobe", b, "bins")); ok {
		t.Error("In: cat-b reported")
	}

	before := h.policyStatus("bins").LoadedAt
	writePolicy(t, policyDir, "bins.yaml", policy("NotIn"))
	deadline := time.Now().Add(timeout())
	for {
		if st := h.policyStatus("bins"); st.LoadedAt != nil && before != nil && st.LoadedAt.After(*before) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("edited policy not reloaded")
		}
		time.Sleep(50 * time.Millisecond)
	}
	a, b = cat(catA), cat(catB)
	h.waitFor("open by cat-b (NotIn)", kprobeOf("process_kprobe", b, "bins"))
	if _, ok := h.find(time.Second, kprobeOf("process_kprobe", a, "bins")); ok {
		t.Error("NotIn: cat-a reported")
	}
}

// A return probe with matchReturnArgs: failed opens only, with the error.
func TestPrivReturnProbe(t *testing.T) {
	kerneltest.Require(t)
	dir := t.TempDir()
	pol := writePolicy(t, t.TempDir(), "p.yaml", fmt.Sprintf(`apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: failed-opens
spec:
  kprobes:
  - call: sys_openat
    syscall: true
    return: true
    args:
    - index: 1
      type: string
    returnArg:
      index: 0
      type: int
    selectors:
    - matchArgs:
      - index: 1
        operator: Prefix
        values: ["%s/"]
      matchReturnArgs:
      - index: 0
        operator: LT
        values: ["0"]
`, dir))
	fatalIf(t, os.WriteFile(filepath.Join(dir, "exists"), nil, 0o644))
	h := startAgent(t, func(c *agent.Config) { c.Policies = []string{pol} })
	h.waitPolicy("failed-opens")
	_, _, ok := runHelper(t, "open", nil, filepath.Join(dir, "exists"))
	errno, _, bad := runHelper(t, "open", nil, filepath.Join(dir, "missing"))
	if errno != int(syscall.ENOENT) {
		t.Fatalf("opening a missing file gave errno %d", errno)
	}
	e := h.waitFor("failed open", kprobeOf("process_kprobe", bad, "failed-opens"))
	if got := e.get("process_kprobe.return.int_arg"); got != float64(-int(syscall.ENOENT)) {
		t.Errorf("return = %v, want %d (event %s)", e.get("process_kprobe.return"), -int(syscall.ENOENT), e)
	}
	if args := argsOf(e, "process_kprobe"); len(args) != 1 || args[0]["string_arg"] != filepath.Join(dir, "missing") {
		t.Errorf("args %v", args)
	}
	if _, found := h.find(time.Second, kprobeOf("process_kprobe", ok, "failed-opens")); found {
		t.Error("a successful open was reported")
	}
}

// countGenericObjects counts the BPF programs the tracing-policy sensor
// loaded (their names start with generic_) and the maps named gen_*.
func countGenericObjects(t *testing.T) (progs, maps int) {
	t.Helper()
	for id := ebpf.ProgramID(0); ; {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			break
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		if info, err := p.Info(); err == nil && strings.HasPrefix(info.Name, "generic_") {
			progs++
		}
		p.Close()
	}
	for id := ebpf.MapID(0); ; {
		next, err := ebpf.MapGetNextID(id)
		if err != nil {
			break
		}
		id = next
		m, err := ebpf.NewMapFromID(id)
		if err != nil {
			continue
		}
		if info, err := m.Info(); err == nil && strings.HasPrefix(info.Name, "gen_") {
			maps++
		}
		m.Close()
	}
	return progs, maps
}

// Adding and removing a policy file while traffic runs: events start and
// stop, and nothing of the policy stays in the kernel.
func TestPrivHotReloadLeavesNothing(t *testing.T) {
	kerneltest.Require(t)
	dir := t.TempDir()
	watched := filepath.Join(dir, "watched")
	fatalIf(t, os.MkdirAll(watched, 0o755))
	fatalIf(t, os.WriteFile(filepath.Join(watched, "a"), nil, 0o644))
	policyDir := t.TempDir()
	h := startAgent(t, func(c *agent.Config) { c.Policies = []string{policyDir} })
	progs0, maps0 := countGenericObjects(t)

	stop := make(chan struct{})
	traffic := make(chan int, 1<<16)
	go func() {
		for {
			select {
			case <-stop:
				close(traffic)
				return
			default:
			}
			cmd := commandAs(resolved(t, "/bin/cat"), "cat", filepath.Join(watched, "a"))
			if cmd.Run() == nil {
				traffic <- cmd.Process.Pid
			}
		}
	}()
	defer func() { close(stop) }()

	pf := writePolicy(t, policyDir, "watch.yaml", fmt.Sprintf(openatPrefixPolicy, watched))
	h.waitPolicy("openat-watched")
	h.waitFor("an event once the policy is added", func(e ev) bool { return e.str("process_kprobe.policy_name") == "openat-watched" })
	progs1, _ := countGenericObjects(t)
	if progs1 <= progs0 {
		t.Errorf("no generic program loaded (%d before, %d after)", progs0, progs1)
	}

	fatalIf(t, os.Remove(pf))
	deadline := time.Now().Add(timeout())
	for h.policyStatus("openat-watched").State != "" {
		if time.Now().After(deadline) {
			t.Fatal("removed policy still loaded")
		}
		time.Sleep(50 * time.Millisecond)
	}
	n := len(h.all(func(e ev) bool { return e.str("process_kprobe.policy_name") == "openat-watched" }))
	time.Sleep(time.Second)
	if m := len(h.all(func(e ev) bool { return e.str("process_kprobe.policy_name") == "openat-watched" })); m > n {
		t.Errorf("%d events after the policy was removed", m-n)
	}
	if progs2, maps2 := countGenericObjects(t); progs2 != progs0 || maps2 != maps0 {
		t.Errorf("after removal: %d generic programs and %d gen_ maps, %d and %d before the policy", progs2, maps2, progs0, maps0)
	}
}

// Every example policy loads on every kernel that has what it needs, and
// is refused with the reason on a kernel that does not. On our VM kernels
// every example must load.
func TestPrivExamplesLoad(t *testing.T) {
	kerneltest.Require(t)
	f := kerneltest.Features(t)
	dir := t.TempDir()
	files, err := fs.Glob(examples.TracingPolicies, "tracingpolicy/*.yaml")
	fatalIf(t, err)
	for _, name := range files {
		b, err := fs.ReadFile(examples.TracingPolicies, name)
		fatalIf(t, err)
		writePolicy(t, dir, filepath.Base(name), string(b))
	}
	h := startAgent(t, func(c *agent.Config) { c.Policies = []string{dir} })
	if len(files) < 12 {
		t.Fatalf("%d example policies, want at least 12", len(files))
	}
	k, known := kerneltest.Known()
	vm := known && strings.HasPrefix(k.Name, "Debian")
	list, err := agent.NewClient(h.socket).Policies(context.Background())
	fatalIf(t, err)
	if len(list) != len(files) {
		t.Errorf("%d policies listed for %d example files", len(list), len(files))
	}
	for _, p := range list {
		switch p.State {
		case "loaded":
			if len(p.Hooks) == 0 {
				t.Errorf("%s loaded without hooks", p.Name)
			}
		case "error":
			lacking := !f.Has(kprobes.FeatureLSM) || !f.Has(kprobes.FeatureKprobe) || !f.Has(kprobes.FeatureFentry)
			if vm || !lacking || !strings.Contains(p.Error, "this kernel") {
				t.Errorf("%s: %s", p.Name, p.Error)
			} else {
				t.Logf("%s does not load here, as expected: %s", p.Name, p.Error)
			}
		default:
			t.Errorf("%s: state %q", p.Name, p.State)
		}
	}
}
