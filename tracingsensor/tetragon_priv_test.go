package tracingsensor

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/internal/kerneltest"
	"github.com/vigilsec/vigil/kprobes"
	"github.com/vigilsec/vigil/tracingpolicies"
)

// envCorpusAction makes the test binary a child that does one thing for
// the Tetragon corpus tests and exits.
const envCorpusAction = "VIGIL_TEST_CORPUS_ACTION"

func init() {
	switch os.Getenv(envCorpusAction) {
	case "":
		return
	case "getpriority":
		unix.Getpriority(unix.PRIO_PROCESS, 0)
	case "connect":
		c, err := net.DialTimeout("tcp", "127.0.0.2:47", time.Second)
		if err == nil {
			c.Close()
		}
	case "dial":
		c, err := net.DialTimeout("tcp4", "127.0.0.1:47123", 5*time.Second)
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		c.Close()
	case "listen":
		// Listen, say so, and keep the socket until stdin closes.
		l, err := net.Listen("tcp4", "127.0.0.1:47123")
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		l.Close()
	}
	os.Exit(0)
}

// corpusEvent is what a test checks of an event (the decoder reuses its
// events, so the sink copies).
type corpusEvent struct {
	pid    uint32
	typ    event.Type
	policy string
	fn     string
	args   []event.Arg
}

type corpusSink struct {
	mu     sync.Mutex
	events []corpusEvent
}

func (s *corpusSink) Export(ev *event.Event) {
	if ev.Kprobe == nil {
		return
	}
	e := corpusEvent{typ: ev.Type, policy: ev.Kprobe.PolicyName, fn: ev.Kprobe.FunctionName}
	if ev.Process != nil {
		e.pid = ev.Process.PID
	}
	for _, a := range ev.Kprobe.Args {
		if a.Sock != nil {
			s := *a.Sock
			a.Sock = &s
		}
		a.Bytes = append([]byte(nil), a.Bytes...)
		e.args = append(e.args, a)
	}
	s.mu.Lock()
	s.events = append(s.events, e)
	s.mu.Unlock()
}

// wait returns the first event of policy that ok accepts, failing t after
// a generous deadline (the event is awaited, not timed).
func (s *corpusSink) wait(t *testing.T, policy string, ok func(corpusEvent) bool) corpusEvent {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		for _, e := range s.events {
			if e.policy == policy && ok(e) {
				s.mu.Unlock()
				return e
			}
		}
		s.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var seen []string
	for _, e := range s.events {
		if e.policy == policy {
			seen = append(seen, fmt.Sprintf("%s %+v", e.fn, e.args))
		}
	}
	t.Fatalf("no matching event of %s; its events: %v", policy, seen)
	return corpusEvent{}
}

// corpusSensor is a sensor with a reader and a sink for the corpus tests.
func corpusSensor(t *testing.T) (*Sensor, *corpusSink, *kprobes.Features) {
	t.Helper()
	f := kerneltest.Features(t)
	ps, cache, log := sensorDeps(t, f)
	sink := &corpusSink{}
	s, err := New(Config{Tracefs: f.Kernel.Tracefs, ProcRoot: "/proc"}, ps, f, cache, sink, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	stop, err := newTestReader(t, ps, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return s, sink, f
}

// loadCorpus loads testdata/tetragon/NAME with ${TEST_BINARY} replaced by
// this test binary's path, and returns its warnings.
func loadCorpus(t *testing.T, s *Sensor, name string) []string {
	t.Helper()
	file := filepath.Join("testdata", "tetragon", name)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data = []byte(strings.ReplaceAll(string(data), "${TEST_BINARY}", exe))
	ps, err := tracingpolicies.Parse(file, data)
	if err != nil {
		t.Fatal(err)
	}
	var warns []string
	for _, w := range ps[0].Warnings {
		warns = append(warns, w.Error())
	}
	// As the agent does: what depends on the kernel (resolve paths) is
	// found in its BTF.
	kernel, err := btf.LoadKernelSpec()
	if err != nil {
		t.Fatal(err)
	}
	kw, err := tracingpolicies.Validate(ps[0], kernel, &tracingpolicies.ValidateOptions{Tracefs: os.DirFS(kerneltest.Features(t).Kernel.Tracefs)})
	if err != nil {
		t.Fatalf("validate %s: %v", name, err)
	}
	for _, w := range kw {
		warns = append(warns, w.Error())
	}
	if _, err := s.Load(ps[0], file); err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return warns
}

func runCorpusChild(t *testing.T, exe, action string, args ...string) {
	t.Helper()
	cmd := exec.Command(exe, append([]string{"-test.run=^$"}, args...)...)
	cmd.Env = append(os.Environ(), envCorpusAction+"="+action)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child %s: %v: %s", action, err, out)
	}
}

// nop holds its argument's place: openat reports the file name and flags
// at their positions, and nothing for the dirfd.
func TestPrivXTetragonNop(t *testing.T) {
	s, sink, _ := corpusSensor(t)
	loadCorpus(t, s, "nop.yaml")
	path := "/vigil-corpus-nop/missing"
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envOpenPaths+"="+path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	e := sink.wait(t, "tetragon-nop", func(e corpusEvent) bool { return len(e.args) > 0 && e.args[0].Str == path })
	if len(e.args) != 2 || e.args[0].Kind != event.ArgString || e.args[1].Kind != event.ArgInt || e.args[1].Int != int64(unix.O_RDONLY|unix.O_CLOEXEC) {
		t.Errorf("args %+v, want the file name and the flags %#x only", e.args, unix.O_RDONLY|unix.O_CLOEXEC)
	}
}

// syscall64 reads raw_syscalls/sys_enter's id; the filter names it by its
// position in args, as Tetragon's examples do.
func TestPrivXTetragonSyscall64(t *testing.T) {
	s, sink, _ := corpusSensor(t)
	warns := loadCorpus(t, s, "syscall64.yaml")
	if len(warns) != 1 || !strings.Contains(warns[0], "matchArgs[0].index: no entry of args reads field 0; as in Tetragon it names args[0] (field 4) by position") {
		t.Errorf("warnings %q, want the one about the filter's index", warns)
	}
	runCorpusChild(t, os.Args[0], "getpriority")
	e := sink.wait(t, "tetragon-syscall64", func(corpusEvent) bool { return true })
	// A 64-bit value: Tetragon's long_arg.
	if e.typ != event.TypeProcessTracepoint || len(e.args) != 1 || e.args[0].Kind != event.ArgLong || e.args[0].Int != unix.SYS_GETPRIORITY {
		t.Errorf("event %s %+v, want process_tracepoint with the syscall number %d as a long_arg", e.typ, e.args, unix.SYS_GETPRIORITY)
	}
}

// A raw tracepoint reads sched_process_exec's own arguments: the old pid
// and the linux_binprm of the program being started.
func TestPrivXTetragonRawTracepoint(t *testing.T) {
	s, sink, _ := corpusSensor(t)
	kerneltest.SkipIfNotSupported(t, kprobes.FeatureRawTracepoint)
	loadCorpus(t, s, "rawtp.yaml")
	exe := filepath.Join(t.TempDir(), "vigil-corpus-rawtp")
	copyFile(t, os.Args[0], exe)
	cmd := exec.Command(exe, "-test.run=^$")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	e := sink.wait(t, "tetragon-rawtp", func(corpusEvent) bool { return true })
	if e.typ != event.TypeProcessTracepoint || len(e.args) != 2 || e.args[1].Kind != event.ArgBinprm || e.args[1].Str != exe {
		t.Fatalf("event %s %+v, want process_tracepoint with the binprm %s", e.typ, e.args, exe)
	}
	if e.args[0].Kind != event.ArgInt || e.args[0].Int != int64(cmd.Process.Pid) {
		t.Errorf("old_pid %+v, want %d", e.args[0], cmd.Process.Pid)
	}
}

// A CIDR with host bits is read masked, as Tetragon does: 127.0.0.1/8
// matches a connect to 127.0.0.2.
func TestPrivXTetragonLenient(t *testing.T) {
	s, sink, _ := corpusSensor(t)
	warns := loadCorpus(t, s, "lenient.yaml")
	want := []string{"returnArg is set but return is false", "has host bits set; it is read as 127.0.0.0/8", "argError applies to Override only; Post ignores it"}
	if len(warns) != len(want) {
		t.Errorf("warnings %q, want %d", warns, len(want))
	}
	for _, w := range want {
		if !strings.Contains(strings.Join(warns, "\n"), w) {
			t.Errorf("no warning %q in %q", w, warns)
		}
	}
	runCorpusChild(t, os.Args[0], "connect")
	e := sink.wait(t, "tetragon-lenient", func(corpusEvent) bool { return true })
	if len(e.args) != 1 || e.args[0].Sock == nil || e.args[0].Sock.Saddr.String() != "127.0.0.2" || e.args[0].Sock.Sport != 47 {
		t.Errorf("args %+v, want the sockaddr 127.0.0.2:47", e.args)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// resolve reads fields through sched_process_exec's arguments: the
// parent's comm and tgid through the task, the file through the binprm,
// and the file name through the binprm cast with btfType.
func TestPrivXTetragonResolve(t *testing.T) {
	s, sink, _ := corpusSensor(t)
	kerneltest.SkipIfNotSupported(t, kprobes.FeatureRawTracepoint)
	loadCorpus(t, s, "resolve.yaml")
	exe := filepath.Join(t.TempDir(), "vigil-corpus-resolve")
	copyFile(t, os.Args[0], exe)
	if out, err := exec.Command(exe, "-test.run=^$").CombinedOutput(); err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	e := sink.wait(t, "tetragon-resolve", func(corpusEvent) bool { return true })
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	if len(e.args) != 4 {
		t.Fatalf("args %+v, want 4", e.args)
	}
	if got, want := e.args[0].Str, strings.TrimSpace(string(comm)); got != want {
		t.Errorf("real_parent.comm = %q, want %q (this test's)", got, want)
	}
	if got, want := e.args[1].Int, int64(os.Getpid()); got != want {
		t.Errorf("real_parent.tgid = %d, want %d", got, want)
	}
	if e.args[2].Kind != event.ArgFile || e.args[2].Str != exe {
		t.Errorf("file = %+v, want the file %s", e.args[2], exe)
	}
	if e.args[3].Str != exe {
		t.Errorf("(linux_binprm) filename = %q, want %q", e.args[3].Str, exe)
	}
}

// Tetragon's own resolve example on an LSM hook: the parent's comm through
// the new mm's owner.
func TestPrivXTetragonResolveLSM(t *testing.T) {
	s, sink, _ := corpusSensor(t)
	kerneltest.SkipIfNotSupported(t, kprobes.FeatureLSM)
	loadCorpus(t, s, "resolve-lsm.yaml")
	exe := filepath.Join(t.TempDir(), "vigil-corpus-resolve")
	copyFile(t, os.Args[0], exe)
	if out, err := exec.Command(exe, "-test.run=^$").CombinedOutput(); err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	e := sink.wait(t, "tetragon-resolve-lsm", func(corpusEvent) bool { return true })
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	if len(e.args) != 2 || e.args[0].Str != strings.TrimSpace(string(comm)) || e.args[1].Str != exe {
		t.Errorf("args %+v, want this test's comm %q and the binprm %s", e.args, strings.TrimSpace(string(comm)), exe)
	}
}

// A tracked socket's events are its owner's: the listener's process is
// reported for the accept that the kernel handles in the connecting
// task.
func TestPrivXTetragonSockTracking(t *testing.T) {
	s, sink, _ := corpusSensor(t)
	kerneltest.SkipIfNotSupported(t, kprobes.FeatureKprobe)
	loadCorpus(t, s, "sock-tracking.yaml")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envCorpusAction+"=listen")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	line := make([]byte, 64)
	n, _ := stdout.Read(line)
	if got := strings.TrimSpace(string(line[:n])); got != "ready" {
		t.Fatalf("listener: %q", got)
	}
	// Another process connects (the agent's own calls are never
	// reported): the kernel handles the handshake in its context.
	dialer := exec.Command(os.Args[0], "-test.run=^$")
	dialer.Env = append(os.Environ(), envCorpusAction+"=dial")
	if out, err := dialer.CombinedOutput(); err != nil {
		t.Fatalf("dialer: %v: %s", err, out)
	}
	e := sink.wait(t, "tetragon-socktrack", func(e corpusEvent) bool { return e.fn == "inet_csk_clone_lock" })
	if e.pid != uint32(cmd.Process.Pid) {
		t.Errorf("accept reported for pid %d, want the listener's %d (the dialer was %d)", e.pid, cmd.Process.Pid, dialer.Process.Pid)
	}
	if len(e.args) != 1 || e.args[0].Sock == nil || e.args[0].Sock.Sport != 47123 || e.args[0].Sock.State != 10 {
		t.Errorf("args %+v, want the listening socket on port 47123", e.args)
	}
}

// isNamespaceCapability: the same open by a root process is reported from a
// new user namespace and not from the host's.
func TestPrivXTetragonNamespaceCapability(t *testing.T) {
	s, sink, _ := corpusSensor(t)
	loadCorpus(t, s, "caps-userns.yaml")
	open := func(path string, userns bool) int {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envOpenPaths+"="+path)
		if userns {
			cmd.SysProcAttr = &syscall.SysProcAttr{
				Cloneflags:  syscall.CLONE_NEWUSER,
				UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
				GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
			}
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("child (user namespace %v): %v: %s", userns, err, out)
		}
		return cmd.Process.Pid
	}
	host := open("/tmp/host/vigil-corpus-userns", false)
	inNS := open("/tmp/userns/vigil-corpus-userns", true)
	e := sink.wait(t, "tetragon-caps-userns", func(e corpusEvent) bool {
		return len(e.args) == 1 && e.args[0].Str == "/tmp/userns/vigil-corpus-userns"
	})
	if e.pid != uint32(inNS) {
		t.Errorf("event of pid %d, want the child in a user namespace, %d", e.pid, inNS)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, e := range sink.events {
		if e.pid == uint32(host) {
			t.Errorf("the open in the host's user namespace was reported: %+v", e.args)
		}
	}
}

// A dentry is reported as its path within its file system: following a
// symbolic link reports the link.
func TestPrivXTetragonDentry(t *testing.T) {
	s, sink, _ := corpusSensor(t)
	kerneltest.SkipIfNotSupported(t, kprobes.FeatureKprobe)
	loadCorpus(t, s, "dentry.yaml")
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "vigil-corpus-link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envOpenPaths+"="+link)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	e := sink.wait(t, "tetragon-dentry", func(corpusEvent) bool { return true })
	if len(e.args) != 1 || e.args[0].Kind != event.ArgPath || !strings.HasSuffix(link, e.args[0].Str) || !strings.HasSuffix(e.args[0].Str, "/vigil-corpus-link") {
		t.Errorf("args %+v, want the path of %s within its file system", e.args, link)
	}
}
