package tracingsensor

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/internal/kerneltest"
	"github.com/vigilsec/vigil/kprobes"
	"github.com/vigilsec/vigil/kprobes/abi"
	"github.com/vigilsec/vigil/tracingpolicies"
)

// envOpenFromThread makes the test binary a child that opens the path from
// a thread other than its main one, and exits.
const envOpenFromThread = "VIGIL_TEST_OPEN_FROM_THREAD"

func init() {
	if path := os.Getenv(envOpenFromThread); path != "" {
		// The main goroutine keeps the main thread, so the goroutine
		// below runs on another one.
		runtime.LockOSThread()
		done := make(chan struct{})
		go func() {
			if fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
				unix.Close(fd)
			}
			close(done)
		}()
		<-done
		os.Exit(0)
	}
}

// envOpenOrFail makes the test binary a child that opens the path and exits
// with status 3 when the open is refused with EPERM.
const envOpenOrFail = "VIGIL_TEST_OPEN_OR_FAIL"

func init() {
	if path := os.Getenv(envOpenOrFail); path != "" {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.EPERM) {
			os.Exit(3)
		}
		if err == nil {
			unix.Close(fd)
		}
		os.Exit(0)
	}
}

// actionSink keeps the action and its note of every policy event, by the
// path the call opened.
type actionSink struct {
	mu     sync.Mutex
	byPath map[string]event.Kprobe
}

func (s *actionSink) Export(ev *event.Event) {
	if ev.Kprobe == nil || len(ev.Kprobe.Args) == 0 {
		return
	}
	s.mu.Lock()
	s.byPath[ev.Kprobe.Args[0].Str] = *ev.Kprobe
	s.mu.Unlock()
}

// wait returns the event of the call that opened path.
func (s *actionSink) wait(t *testing.T, path string) event.Kprobe {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		s.mu.Lock()
		k, ok := s.byPath[path]
		s.mu.Unlock()
		if ok {
			return k
		}
	}
	t.Fatalf("no event for the open of %s", path)
	return event.Kprobe{}
}

// A Sigkill on a selector that matches every process (only the opened path
// is filtered) kills an ordinary process, but not the agent's parent nor a
// process running a protected binary: their events say the action was not
// taken, the hook's counter of skipped enforcements counts them, and the
// agent's protection of a process ends when it exits.
func TestPrivProtectedProcesses(t *testing.T) {
	f := kerneltest.Features(t)
	ps, cache, log := sensorDeps(t, f)

	// A copy of the test binary under another path is the protected
	// binary; the test binary itself is not protected.
	dir := t.TempDir()
	protectedBin := copySelf(t, dir, "protected-child")
	bins, err := ResolveBinaries([]string{protectedBin}, "")
	if err != nil || len(bins) == 0 {
		t.Fatalf("resolve %s: %v %v", protectedBin, bins, err)
	}

	// The "agent" is a child of the test, so that the test process is the
	// agent's parent, protected, and its calls are not the agent's own.
	agent := exec.Command("sleep", "600")
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	agentDone := false
	defer func() {
		if !agentDone {
			agent.Process.Kill()
			agent.Wait()
		}
	}()

	sink := &actionSink{byPath: map[string]event.Kprobe{}}
	s, err := New(Config{Tracefs: f.Kernel.Tracefs, ProcRoot: "/proc", Protect: Protection{AgentPID: agent.Process.Pid, Binaries: bins}},
		ps, f, cache, sink, log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stop, err := newTestReader(t, ps, s)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	base := fmt.Sprintf("/vigil-protect-%d/", os.Getpid())
	parentPath, protectedPath, plainPath := base+"parent", base+"protected-binary", base+"plain"
	doc := fmt.Sprintf(`apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata: {name: protect}
spec:
  kprobes:
  - call: sys_openat
    syscall: true
    args:
    - {index: 1, type: string, label: filename}
    selectors:
    - matchArgs:
      - {index: 1, operator: Equal, values: [%s, %s, %s]}
      matchActions: [{action: Sigkill}]
`, parentPath, protectedPath, plainPath)
	tps, err := tracingpolicies.Parse("protect.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	pol, err := s.Load(tps[0], "protect.yaml")
	if err != nil {
		t.Fatal(err)
	}

	const protectedNote = "not taken: the process is protected (the agent, its parents, PID 1, a protected binary or a kernel thread); to act on it, name it exactly (matchBinaries In, matchPIDs In) and set the policy option allow-protected-enforcement"

	// The agent's parent: this process. A kill would end the test here.
	if fd, err := unix.Open(parentPath, unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
		unix.Close(fd)
	}
	if k := sink.wait(t, parentPath); k.Action != "KPROBE_ACTION_SIGKILL" || k.ActionNote != protectedNote {
		t.Errorf("the agent's parent: action %s, note %q; want SIGKILL not taken (%q)", k.Action, k.ActionNote, protectedNote)
	}

	run := func(bin, path string) error {
		cmd := exec.Command(bin, "-test.run=^$")
		cmd.Env = append(os.Environ(), envOpenPaths+"="+path)
		return cmd.Run()
	}
	if err := run(protectedBin, protectedPath); err != nil {
		t.Errorf("the protected binary %s: %v, want a normal exit", protectedBin, err)
	}
	if k := sink.wait(t, protectedPath); k.Action != "KPROBE_ACTION_SIGKILL" || k.ActionNote != protectedNote {
		t.Errorf("the protected binary: action %s, note %q; want SIGKILL not taken (%q)", k.Action, k.ActionNote, protectedNote)
	}

	err = run(os.Args[0], plainPath)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("the unprotected child: %v, want killed by SIGKILL", err)
	}
	if k := sink.wait(t, plainPath); k.Action != "KPROBE_ACTION_SIGKILL" || k.ActionNote == protectedNote {
		t.Errorf("the unprotected child: action %s, note %q; want SIGKILL taken", k.Action, k.ActionNote)
	}

	var skipped uint64
	for _, h := range pol.Hooks() {
		skipped += h.Protected
	}
	if skipped != 2 {
		t.Errorf("%d enforcements skipped for protected processes, want 2 (the agent's parent, the protected binary)", skipped)
	}

	// Named exactly, a protected binary is acted on only with the opt-in.
	if err := s.Unload(pol.Key()); err != nil {
		t.Fatal(err)
	}
	for i, optIn := range []bool{false, true} {
		path := fmt.Sprintf("%snamed-%d", base, i)
		opts := ""
		if optIn {
			opts = "  options: [{name: allow-protected-enforcement, value: \"true\"}]\n"
		}
		doc := fmt.Sprintf(`apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata: {name: named-%d}
spec:
%s  kprobes:
  - call: sys_openat
    syscall: true
    args:
    - {index: 1, type: string, label: filename}
    selectors:
    - matchBinaries: [{operator: In, values: [%s]}]
      matchArgs:
      - {index: 1, operator: Equal, values: [%s]}
      matchActions: [{action: Sigkill}]
`, i, opts, bins[0], path)
		tps, err := tracingpolicies.Parse("named.yaml", []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		named, err := s.Load(tps[0], "named.yaml")
		if err != nil {
			t.Fatal(err)
		}
		err = run(protectedBin, path)
		k := sink.wait(t, path)
		killed := errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL
		switch {
		case optIn && (!killed || k.ActionNote == protectedNote):
			t.Errorf("named with allow-protected-enforcement: %v, note %q; want killed", err, k.ActionNote)
		case !optIn && (err != nil || k.ActionNote != protectedNote):
			t.Errorf("named without allow-protected-enforcement: %v, note %q; want not killed (%q)", err, k.ActionNote, protectedNote)
		}
		if err := s.Unload(named.Key()); err != nil {
			t.Fatal(err)
		}
	}

	// The agent's entry leaves the kernel's table when it exits.
	tgids := s.gen.Map(abi.GenericMapProtectedTgids)
	pid := uint32(agent.Process.Pid)
	var why uint32
	if err := tgids.Lookup(pid, &why); err != nil || why&uint32(abi.ProcessProtectReasonPROTECT_AGENT) == 0 {
		t.Fatalf("the agent (PID %d) in protected_tgids: %#x, %v", pid, why, err)
	}
	agent.Process.Kill()
	agent.Wait()
	agentDone = true
	if err := tgids.Lookup(pid, &why); !errors.Is(err, ebpf.ErrKeyNotExist) {
		t.Errorf("PID %d is still protected after it exited: %#x, %v", pid, why, err)
	}
}

// isNamespacePID compares the PID of the process in its own PID namespace,
// whichever of its threads makes the call: the first process of a new PID
// namespace is its PID 1 and is killed, the same program in the host's
// namespace is not matched.
func TestPrivNamespacePID(t *testing.T) {
	f := kerneltest.Features(t)
	ps, cache, log := sensorDeps(t, f)
	sink := &actionSink{byPath: map[string]event.Kprobe{}}
	s, err := New(Config{Tracefs: f.Kernel.Tracefs, ProcRoot: "/proc"}, ps, f, cache, sink, log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stop, err := newTestReader(t, ps, s)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	base := fmt.Sprintf("/vigil-nspid-%d/", os.Getpid())
	inNS, onHost, marker := base+"new-namespace", base+"host", base+"marker"
	doc := fmt.Sprintf(`apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata: {name: nspid}
spec:
  kprobes:
  - call: sys_openat
    syscall: true
    args:
    - {index: 1, type: string, label: filename}
    selectors:
    - matchPIDs: [{operator: In, isNamespacePID: true, values: [1]}]
      matchArgs:
      - {index: 1, operator: Equal, values: [%s, %s]}
      matchActions: [{action: Sigkill}]
    - matchArgs:
      - {index: 1, operator: Equal, values: [%s]}
`, inNS, onHost, marker)
	tps, err := tracingpolicies.Parse("nspid.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(tps[0], "nspid.yaml"); err != nil {
		t.Fatal(err)
	}
	run := func(path string, newNS bool) error {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envOpenFromThread+"="+path)
		if newNS {
			cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
		}
		return cmd.Run()
	}

	err = run(inNS, true)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("PID 1 of a new PID namespace: %v, want killed by SIGKILL", err)
	}
	if k := sink.wait(t, inNS); k.Action != "KPROBE_ACTION_SIGKILL" {
		t.Errorf("PID 1 of a new PID namespace: action %s, want KPROBE_ACTION_SIGKILL", k.Action)
	}
	if err := run(onHost, false); err != nil {
		t.Errorf("a process of the host's namespace: %v, want a normal exit", err)
	}
	// The marker's event comes after any event of the host's process.
	if err := run(marker, false); err != nil {
		t.Fatal(err)
	}
	sink.wait(t, marker)
	sink.mu.Lock()
	k, ok := sink.byPath[onHost]
	sink.mu.Unlock()
	if ok {
		t.Errorf("a process of the host's namespace matched isNamespacePID In [1]: %+v", k)
	}
}

// An Override on an LSM hook with a selector that matches every process
// denies an ordinary process, not one running a protected binary.
func TestPrivProtectedOverride(t *testing.T) {
	f := kerneltest.Features(t)
	kerneltest.SkipIfNotSupported(t, kprobes.FeatureLSM)
	ps, cache, log := sensorDeps(t, f)

	dir := t.TempDir()
	protectedBin := copySelf(t, dir, "protected-child")
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	bins, err := ResolveBinaries([]string{protectedBin}, "")
	if err != nil || len(bins) == 0 {
		t.Fatalf("resolve %s: %v %v", protectedBin, bins, err)
	}
	target, err = filepath.EvalSymlinks(target)
	if err != nil {
		t.Fatal(err)
	}

	sink := &actionSink{byPath: map[string]event.Kprobe{}}
	s, err := New(Config{Tracefs: f.Kernel.Tracefs, ProcRoot: "/proc", Protect: Protection{Binaries: bins}}, ps, f, cache, sink, log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stop, err := newTestReader(t, ps, s)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	doc := fmt.Sprintf(`apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata: {name: protect-override}
spec:
  options: [{name: repeated-events, value: report-all}]
  lsmhooks:
  - hook: file_open
    args: [{index: 0, type: file}]
    selectors:
    - matchArgs: [{index: 0, operator: Equal, values: [%s]}]
      matchActions: [{action: Override, argError: -1}]
`, target)
	tps, err := tracingpolicies.Parse("override.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	pol, err := s.Load(tps[0], "override.yaml")
	if err != nil {
		t.Fatal(err)
	}
	run := func(bin string) error {
		cmd := exec.Command(bin, "-test.run=^$")
		cmd.Env = append(os.Environ(), envOpenOrFail+"="+target)
		return cmd.Run()
	}
	const protectedNote = "not taken: the process is protected (the agent, its parents, PID 1, a protected binary or a kernel thread); to act on it, name it exactly (matchBinaries In, matchPIDs In) and set the policy option allow-protected-enforcement"

	if err := run(protectedBin); err != nil {
		t.Errorf("the protected binary: %v, want its open allowed", err)
	}
	if k := sink.wait(t, target); k.Action != "KPROBE_ACTION_OVERRIDE" || k.ActionNote != protectedNote {
		t.Errorf("the protected binary: action %s, note %q; want OVERRIDE not taken", k.Action, k.ActionNote)
	}
	sink.mu.Lock()
	delete(sink.byPath, target)
	sink.mu.Unlock()

	err = run(os.Args[0])
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("the unprotected child: %v, want its open denied with EPERM (exit status 3)", err)
	}
	if k := sink.wait(t, target); k.Action != "KPROBE_ACTION_OVERRIDE" || k.ActionNote == protectedNote {
		t.Errorf("the unprotected child: action %s, note %q; want OVERRIDE taken", k.Action, k.ActionNote)
	}
	var skipped uint64
	for _, h := range pol.Hooks() {
		skipped += h.Protected
	}
	if skipped != 1 {
		t.Errorf("%d enforcements skipped for protected processes, want 1", skipped)
	}
}

// copySelf copies the test binary to dir/name: the same program under
// another path.
func copySelf(t *testing.T, dir, name string) string {
	t.Helper()
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, self, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}
