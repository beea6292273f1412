package policy_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilsec/vigil/agent/agenttest"

	"github.com/vigilsec/vigil/agent"
	"github.com/vigilsec/vigil/examples"
	"github.com/vigilsec/vigil/internal/kerneltest"
	"github.com/vigilsec/vigil/kprobes"
)

// A syscall hook with a Prefix filter reports matching opens with path and
// flags, and nothing else — on every kernel (tracepoints on the host).
func TestPrivSyscallPrefix(t *testing.T) {
	kerneltest.Require(t)
	dir := t.TempDir()
	watched := filepath.Join(dir, "watched")
	other := filepath.Join(dir, "other")
	agenttest.FatalIf(t, os.MkdirAll(watched, 0o755))
	agenttest.FatalIf(t, os.MkdirAll(other, 0o755))
	agenttest.FatalIf(t, os.WriteFile(filepath.Join(watched, "a"), []byte("x"), 0o644))
	agenttest.FatalIf(t, os.WriteFile(filepath.Join(other, "b"), []byte("x"), 0o644))
	pol := agenttest.WritePolicy(t, t.TempDir(), "p.yaml", fmt.Sprintf(agenttest.OpenatPrefixPolicy, watched))

	h := agenttest.StartAgent(t, func(c *agent.Config) { c.Policies = []string{pol} })
	st := h.WaitPolicy("openat-watched")
	_, _, pidA := agenttest.RunHelper(t, "open", nil, filepath.Join(watched, "a"))
	_, _, pidB := agenttest.RunHelper(t, "open", nil, filepath.Join(other, "b"))

	e := h.WaitFor("openat event", agenttest.KprobeOf("process_kprobe", pidA, "openat-watched"))
	args := agenttest.ArgsOf(e, "process_kprobe")
	if len(args) != 2 || args[0]["string_arg"] != filepath.Join(watched, "a") || args[0]["label"] != "filename" {
		t.Errorf("args = %v", args)
	}
	if flags, ok := args[1]["int_arg"].(float64); !ok || int(flags)&syscall.O_CLOEXEC == 0 {
		t.Errorf("flags arg = %v, want O_RDONLY|O_CLOEXEC as os.Open passes", args[1])
	}
	if got := e.Str("process_kprobe.function_name"); got != kprobes.SyscallSymbol("openat") {
		t.Errorf("function_name = %q", got)
	}
	if got := e.Str("process_kprobe.action"); got != "KPROBE_ACTION_POST" {
		t.Errorf("action = %q", got)
	}
	if e.Str("process_kprobe.mechanism") != string(st.Hooks[0].Mechanism) || e.Str("process_kprobe.message") != "watched file opened" {
		t.Errorf("mechanism %q (policy list says %s), message %q", e.Str("process_kprobe.mechanism"), st.Hooks[0].Mechanism, e.Str("process_kprobe.message"))
	}
	if _, ok := h.Find(time.Second, agenttest.KprobeOf("process_kprobe", pidB, "openat-watched")); ok {
		t.Error("an open outside the prefix was reported")
	}
}

// A kernel-function hook with a file argument (VM kernels: kprobes).
func TestPrivKernelFunctionFileArg(t *testing.T) {
	kerneltest.SkipIfNotSupported(t, kprobes.FeatureKprobe)
	dir := t.TempDir()
	target := filepath.Join(dir, "secret")
	agenttest.FatalIf(t, os.WriteFile(target, []byte("x"), 0o600))
	pol := agenttest.WritePolicy(t, t.TempDir(), "p.yaml", fmt.Sprintf(`apiVersion: cilium.io/v1alpha1
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
	h := agenttest.StartAgent(t, func(c *agent.Config) { c.Policies = []string{pol} })
	h.WaitPolicy("file-open-kfunc")
	_, _, pid := agenttest.RunHelper(t, "open", nil, target)
	e := h.WaitFor("security_file_open event", agenttest.KprobeOf("process_kprobe", pid, "file-open-kfunc"))
	args := agenttest.ArgsOf(e, "process_kprobe")
	fa, _ := args[0]["file_arg"].(map[string]any)
	if fa == nil || fa["path"] != target {
		t.Errorf("file_arg = %v, want path %s", args, target)
	}
	if e.Str("process_kprobe.function_name") != "security_file_open" {
		t.Errorf("function_name %q", e.Str("process_kprobe.function_name"))
	}
}

// An LSM hook (VM kernels: BPF LSM) reports the file opened.
func TestPrivLSMFileOpen(t *testing.T) {
	kerneltest.SkipIfNotSupported(t, kprobes.FeatureLSM)
	dir := t.TempDir()
	target := filepath.Join(dir, "lsm-watched")
	agenttest.FatalIf(t, os.WriteFile(target, []byte("x"), 0o600))
	pol := agenttest.WritePolicy(t, t.TempDir(), "p.yaml", fmt.Sprintf(`apiVersion: cilium.io/v1alpha1
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
	h := agenttest.StartAgent(t, func(c *agent.Config) { c.Policies = []string{pol} })
	if st := h.WaitPolicy("lsm-open"); st.Hooks[0].Mechanism != kprobes.MechLSM {
		t.Errorf("mechanism %s, want lsm", st.Hooks[0].Mechanism)
	}
	_, _, pid := agenttest.RunHelper(t, "open", nil, target)
	e := h.WaitFor("process_lsm event", agenttest.KprobeOf("process_lsm", pid, "lsm-open"))
	fa, _ := agenttest.ArgsOf(e, "process_lsm")[0]["file_arg"].(map[string]any)
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
	agenttest.CopyExecutable(t, "/bin/cat", catA)
	agenttest.CopyExecutable(t, "/bin/cat", catB)
	target := filepath.Join(dir, "f")
	agenttest.FatalIf(t, os.WriteFile(target, []byte("x\n"), 0o644))
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
	agenttest.WritePolicy(t, policyDir, "bins.yaml", policy("In"))
	h := agenttest.StartAgent(t, func(c *agent.Config) { c.Policies = []string{policyDir} })
	h.WaitPolicy("bins")
	cat := func(bin string) int {
		cmd := agenttest.CommandAs(bin, "cat", target)
		agenttest.FatalIf(t, cmd.Run())
		return cmd.Process.Pid
	}
	a, b := cat(catA), cat(catB)
	h.WaitFor("open by cat-a (In)", agenttest.KprobeOf("process_kprobe", a, "bins"))
	if _, ok := h.Find(time.Second, agenttest.KprobeOf("process_kprobe", b, "bins")); ok {
		t.Error("In: cat-b reported")
	}

	before := h.PolicyStatus("bins").LoadedAt
	agenttest.WritePolicy(t, policyDir, "bins.yaml", policy("NotIn"))
	deadline := time.Now().Add(agenttest.Timeout())
	for {
		if st := h.PolicyStatus("bins"); st.LoadedAt != nil && before != nil && st.LoadedAt.After(*before) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("edited policy not reloaded")
		}
		time.Sleep(50 * time.Millisecond)
	}
	a, b = cat(catA), cat(catB)
	h.WaitFor("open by cat-b (NotIn)", agenttest.KprobeOf("process_kprobe", b, "bins"))
	if _, ok := h.Find(time.Second, agenttest.KprobeOf("process_kprobe", a, "bins")); ok {
		t.Error("NotIn: cat-a reported")
	}
}

// A return probe with matchReturnArgs: failed opens only, with the error.
func TestPrivReturnProbe(t *testing.T) {
	kerneltest.Require(t)
	dir := t.TempDir()
	pol := agenttest.WritePolicy(t, t.TempDir(), "p.yaml", fmt.Sprintf(`apiVersion: cilium.io/v1alpha1
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
	agenttest.FatalIf(t, os.WriteFile(filepath.Join(dir, "exists"), nil, 0o644))
	h := agenttest.StartAgent(t, func(c *agent.Config) { c.Policies = []string{pol} })
	h.WaitPolicy("failed-opens")
	_, _, ok := agenttest.RunHelper(t, "open", nil, filepath.Join(dir, "exists"))
	errno, _, bad := agenttest.RunHelper(t, "open", nil, filepath.Join(dir, "missing"))
	if errno != int(syscall.ENOENT) {
		t.Fatalf("opening a missing file gave errno %d", errno)
	}
	e := h.WaitFor("failed open", agenttest.KprobeOf("process_kprobe", bad, "failed-opens"))
	if got := e.Get("process_kprobe.return.int_arg"); got != float64(-int(syscall.ENOENT)) {
		t.Errorf("return = %v, want %d (event %s)", e.Get("process_kprobe.return"), -int(syscall.ENOENT), e)
	}
	if args := agenttest.ArgsOf(e, "process_kprobe"); len(args) != 1 || args[0]["string_arg"] != filepath.Join(dir, "missing") {
		t.Errorf("args %v", args)
	}
	if _, found := h.Find(time.Second, agenttest.KprobeOf("process_kprobe", ok, "failed-opens")); found {
		t.Error("a successful open was reported")
	}
}

// Adding and removing a policy file while traffic runs: events start and
// stop, and nothing of the policy stays in the kernel.
func TestPrivHotReloadLeavesNothing(t *testing.T) {
	kerneltest.Require(t)
	dir := t.TempDir()
	watched := filepath.Join(dir, "watched")
	agenttest.FatalIf(t, os.MkdirAll(watched, 0o755))
	agenttest.FatalIf(t, os.WriteFile(filepath.Join(watched, "a"), nil, 0o644))
	policyDir := t.TempDir()
	h := agenttest.StartAgent(t, func(c *agent.Config) { c.Policies = []string{policyDir} })
	progs0, maps0 := agenttest.CountGenericObjects(t)

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
			cmd := agenttest.CommandAs(agenttest.Resolved(t, "/bin/cat"), "cat", filepath.Join(watched, "a"))
			if cmd.Run() == nil {
				traffic <- cmd.Process.Pid
			}
		}
	}()
	defer func() { close(stop) }()

	pf := agenttest.WritePolicy(t, policyDir, "watch.yaml", fmt.Sprintf(agenttest.OpenatPrefixPolicy, watched))
	h.WaitPolicy("openat-watched")
	h.WaitFor("an event once the policy is added", func(e agenttest.Event) bool { return e.Str("process_kprobe.policy_name") == "openat-watched" })
	progs1, _ := agenttest.CountGenericObjects(t)
	if progs1 <= progs0 {
		t.Errorf("no generic program loaded (%d before, %d after)", progs0, progs1)
	}

	agenttest.FatalIf(t, os.Remove(pf))
	deadline := time.Now().Add(agenttest.Timeout())
	for h.PolicyStatus("openat-watched").State != "" {
		if time.Now().After(deadline) {
			t.Fatal("removed policy still loaded")
		}
		time.Sleep(50 * time.Millisecond)
	}
	n := len(h.All(func(e agenttest.Event) bool { return e.Str("process_kprobe.policy_name") == "openat-watched" }))
	time.Sleep(time.Second)
	if m := len(h.All(func(e agenttest.Event) bool { return e.Str("process_kprobe.policy_name") == "openat-watched" })); m > n {
		t.Errorf("%d events after the policy was removed", m-n)
	}
	if progs2, maps2 := agenttest.CountGenericObjects(t); progs2 != progs0 || maps2 != maps0 {
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
	agenttest.FatalIf(t, err)
	for _, name := range files {
		b, err := fs.ReadFile(examples.TracingPolicies, name)
		agenttest.FatalIf(t, err)
		agenttest.WritePolicy(t, dir, filepath.Base(name), string(b))
	}
	h := agenttest.StartAgent(t, func(c *agent.Config) { c.Policies = []string{dir} })
	if len(files) < 12 {
		t.Fatalf("%d example policies, want at least 12", len(files))
	}
	k, known := kerneltest.Known()
	vm := known && strings.HasPrefix(k.Name, "Debian")
	list, err := agent.NewClient(h.Socket).Policies(context.Background())
	agenttest.FatalIf(t, err)
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
