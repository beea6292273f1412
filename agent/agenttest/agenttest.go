// Package agenttest runs a real agent inside a privileged test and collects
// what it exports, as a user's parser would read it; it also holds the
// helpers the agent's tests share (a helper program that makes one system
// call, policy files, servers on loopback). The tests themselves live in
// agent/tests/*, one package (one VM of the VM tier) per area.
package agenttest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/agent"
	"github.com/vigilsec/vigil/examples"
	"github.com/vigilsec/vigil/exporter"
	"github.com/vigilsec/vigil/identity/cgroup"
	"github.com/vigilsec/vigil/internal/kerneltest"
	"github.com/vigilsec/vigil/networkpolicy/datapath/testpods"
)

// Event is one exported event, decoded as a user's parser would see it.
type Event map[string]any

// Get walks a dotted path ("process_exec.process.binary").
func (e Event) Get(path string) any {
	var cur any = map[string]any(e)
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

func (e Event) Str(path string) string {
	s, _ := e.Get(path).(string)
	return s
}

func (e Event) Num(path string) float64 {
	f, _ := e.Get(path).(float64)
	return f
}

func (e Event) String() string {
	b, _ := json.Marshal(e)
	return string(b)
}

// Harness is an agent running in the test process, with every event it
// exports collected.
type Harness struct {
	T      *testing.T
	Socket string
	agent  *agent.Agent
	cancel context.CancelFunc
	done   chan error

	mu     sync.Mutex
	events []Event
	lines  [][]byte // as exported, for recording
	cond   *sync.Cond
}

// Timeout scales waits for the VM tier, where everything runs emulated.
func Timeout() time.Duration {
	if k, ok := kerneltest.Known(); ok && strings.HasPrefix(k.Name, "Debian") {
		return 90 * time.Second
	}
	if _, ok := kerneltest.Known(); !ok {
		return 60 * time.Second
	}
	return 20 * time.Second
}

// StartAgent runs an agent with the test configuration, changed by mutate,
// and waits until it is ready.
func StartAgent(t *testing.T, mutate func(*agent.Config)) *Harness {
	t.Helper()
	kerneltest.Require(t)
	cfg := agent.DefaultConfig()
	cfg.NodeName = "test-node"
	cfg.MetricsAddr = ""
	cfg.UI.Addr, cfg.UI.HubbleAddr = "", ""
	cfg.SocketPath = filepath.Join(t.TempDir(), "vigil.sock")
	cfg.NoDefaultPolicies = true
	cfg.Rules.NoDefaultRules = true
	cfg.Export = exporter.DefaultConfig()
	cfg.Export.Stdout = false
	cfg.Export.File = filepath.Join(t.TempDir(), "events.json")
	if mutate != nil {
		mutate(&cfg)
	}
	log := logrus.New()
	log.SetOutput(testWriter{t})
	log.SetLevel(logrus.InfoLevel)
	progress := &progressHook{}
	progress.touch()
	log.AddHook(progress)
	a, err := agent.New(cfg, log)
	if err != nil {
		t.Fatalf("agent.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &Harness{T: t, Socket: cfg.SocketPath, agent: a, cancel: cancel, done: make(chan error, 1)}
	h.cond = sync.NewCond(&h.mu)
	go func() { h.done <- a.Run(ctx) }()

	// Starting with many policies takes a while on an emulated CPU (the
	// verifier runs for each): the agent has Timeout() from its last log
	// line (a policy loaded, a sensor attached) to be ready, not in all.
	for !a.Ready() {
		select {
		case err := <-h.done:
			t.Fatalf("agent stopped before it was ready: %v", err)
		default:
		}
		if idle := time.Since(progress.last()); idle > Timeout() {
			cancel()
			t.Fatalf("agent not ready: nothing logged for %v", idle.Round(time.Second))
		}
		time.Sleep(20 * time.Millisecond)
	}
	sub := a.Subscribe(exporter.SubscribeOptions{Buffer: 1 << 16})
	go func() {
		for line := range sub.C {
			var e Event
			if err := json.Unmarshal(line, &e); err != nil {
				t.Errorf("exported line is not JSON: %v: %s", err, line)
				continue
			}
			h.mu.Lock()
			h.events = append(h.events, e)
			h.lines = append(h.lines, line)
			h.cond.Broadcast()
			h.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		sub.Cancel()
		h.Stop()
	})
	return h
}

// Stop stops the agent as SIGTERM does (its context ends) and waits for
// Run to return; the test's cleanup calls it too.
func (h *Harness) Stop() {
	h.T.Helper()
	h.cancel()
	select {
	case err, ok := <-h.done:
		if ok {
			close(h.done)
		}
		if err != nil {
			h.T.Errorf("agent: %v", err)
		}
	case <-time.After(Timeout()):
		h.T.Error("agent did not stop")
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Metrics returns the agent's metrics registry.
func (h *Harness) Metrics() *prometheus.Registry { return h.agent.Registry() }

// WaitFor returns the first event for which match is true, waiting until
// the timeout.
func (h *Harness) WaitFor(what string, match func(Event) bool) Event {
	h.T.Helper()
	e, ok := h.Find(Timeout(), match)
	if !ok {
		h.T.Fatalf("no %s within %v; %d events seen", what, Timeout(), h.Count())
	}
	return e
}

// Find waits up to d for an event matching match.
func (h *Harness) Find(d time.Duration, match func(Event) bool) (Event, bool) {
	deadline := time.Now().Add(d)
	timer := time.AfterFunc(d, func() {
		h.mu.Lock()
		h.cond.Broadcast()
		h.mu.Unlock()
	})
	defer timer.Stop()
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := 0
	for {
		for ; seen < len(h.events); seen++ {
			if match(h.events[seen]) {
				return h.events[seen], true
			}
		}
		if time.Now().After(deadline) {
			return nil, false
		}
		h.cond.Wait()
	}
}

// All returns the events seen so far that match.
func (h *Harness) All(match func(Event) bool) []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Event
	for _, e := range h.events {
		if match(e) {
			out = append(out, e)
		}
	}
	return out
}

func (h *Harness) Count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.events)
}

// ExecOf matches the process_exec event of pid.
func ExecOf(pid int) func(Event) bool {
	return func(e Event) bool {
		return e.Get("process_exec") != nil && int(e.Num("process_exec.process.pid")) == pid
	}
}

// ExitOf matches the process_exit event of pid.
func ExitOf(pid int) func(Event) bool {
	return func(e Event) bool {
		return e.Get("process_exit") != nil && int(e.Num("process_exit.process.pid")) == pid
	}
}

// Resolved is a path with its symlinks resolved, as the kernel reports
// executables (on the VMs /bin/echo is busybox).
func Resolved(t *testing.T, path string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(path)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func FatalIf(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func helperMain(op string, args []string) int {
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	var err error
	switch op {
	case "open":
		var f *os.File
		f, err = os.Open(arg(0))
		if err == nil {
			buf := make([]byte, 16)
			_, err = f.Read(buf)
			if errors.Is(err, os.ErrClosed) || err != nil && err.Error() == "EOF" {
				err = nil
			}
			f.Close()
		}
	case "mkdir":
		err = os.Mkdir(arg(0), 0o755)
	case "finit_module":
		var f *os.File
		f, err = os.Open(arg(0))
		if err == nil {
			params, _ := syscall.BytePtrFromString("")
			_, _, e := syscall.Syscall(unix.SYS_FINIT_MODULE, f.Fd(), uintptr(unsafe.Pointer(params)), 0)
			if e != 0 {
				err = e
			}
		}
	case "unshare-user":
		err = syscall.Unshare(syscall.CLONE_NEWUSER)
	case "tcp-serve-once":
		// Accept one connection on arg(0) (an address), read what comes,
		// answer "ok" and close.
		var ln net.Listener
		ln, err = net.Listen("tcp", arg(0))
		if err == nil {
			var c net.Conn
			c, err = ln.Accept()
			if err == nil {
				io.Copy(io.Discard, io.LimitReader(c, 5))
				c.Write([]byte("ok"))
				c.Close()
			}
			ln.Close()
		}
	case "tcp-send":
		var c net.Conn
		c, err = net.Dial("tcp", arg(0))
		if err == nil {
			c.Write([]byte("hello"))
			io.ReadAll(c)
			c.Close()
		}
	case "tcp-connect-n":
		// Connect arg(1) times to arg(0), one connection after another,
		// each sending "hello" and reading the answer.
		var n int
		n, err = strconv.Atoi(arg(1))
		for i := 0; i < n && err == nil; i++ {
			var c net.Conn
			if c, err = net.Dial("tcp", arg(0)); err == nil {
				c.Write([]byte("hello"))
				io.ReadAll(c)
				c.Close()
			}
		}
	case "udp-send":
		var c net.Conn
		c, err = net.Dial("udp", arg(0))
		if err == nil {
			_, err = c.Write([]byte("ping"))
			c.Close()
		}
	case "dns-connect":
		err = dnsConnect(args)
	case "noop":
	case "open-write":
		// Open arg(0) with arg(1) = trunc|append|create.
		flags := os.O_WRONLY | os.O_CREATE
		switch arg(1) {
		case "trunc":
			flags |= os.O_TRUNC
		case "append":
			flags = os.O_WRONLY | os.O_APPEND
		}
		var f *os.File
		if f, err = os.OpenFile(arg(0), flags, 0o644); err == nil {
			f.Close()
		}
	case "unlink":
		err = unix.Unlinkat(unix.AT_FDCWD, arg(0), 0)
	case "packet-socket", "inet-socket":
		family, typ := unix.AF_PACKET, unix.SOCK_RAW
		if op == "inet-socket" {
			family, typ = unix.AF_INET, unix.SOCK_DGRAM
		}
		var fd int
		if fd, err = unix.Socket(family, typ, 0); err == nil {
			unix.Close(fd)
		}
	case "dup-socket", "dup-pipe":
		// Duplicate a TCP connection to arg(0) (or a pipe) onto stdout.
		var fd int
		if op == "dup-socket" {
			var c net.Conn
			if c, err = net.Dial("tcp", arg(0)); err == nil {
				var f *os.File
				f, err = c.(*net.TCPConn).File()
				if err == nil {
					fd = int(f.Fd())
				}
			}
		} else {
			var p [2]int
			if err = unix.Pipe(p[:]); err == nil {
				fd = p[1]
			}
		}
		if err == nil {
			err = unix.Dup2(fd, 1)
		}
	case "ptrace-attach", "ptrace-peek":
		var pid int
		fmt.Sscan(arg(0), &pid)
		if op == "ptrace-attach" {
			if err = unix.PtraceAttach(pid); err == nil {
				var ws unix.WaitStatus
				unix.Wait4(pid, &ws, unix.WALL, nil)
				err = unix.PtraceDetach(pid)
			}
		} else {
			_, err = unix.PtracePeekData(pid, 0, make([]byte, 8))
		}
	case "memfd-exec":
		// Copy this program into an anonymous memory file and run it
		// from there as the noop helper.
		var fd int
		if fd, err = unix.MemfdCreate("payload", 0); err == nil {
			var self []byte
			if self, err = os.ReadFile("/proc/self/exe"); err == nil {
				if _, err = unix.Write(fd, self); err == nil {
					env := []string{"VIGIL_TEST_HELPER=noop"}
					for _, kv := range os.Environ() {
						if !strings.HasPrefix(kv, "VIGIL_TEST_HELPER=") {
							env = append(env, kv)
						}
					}
					err = unix.Exec(fmt.Sprintf("/proc/self/fd/%d", fd), []string{"payload"}, env)
				}
			}
		}
	case "agent":
		return agentHelper(args)
	default:
		fmt.Fprintf(os.Stderr, "unknown helper operation %q\n", op)
		return 2
	}
	fmt.Printf("errno=%d\n", ErrnoOf(err))
	return 0
}

func ErrnoOf(err error) int {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return int(e)
	}
	return -1
}

// ExamplePolicy writes the named example policy (optionally edited) into a
// directory of its own and returns the directory.
func ExamplePolicy(t *testing.T, name string, edit func(string) string) string {
	t.Helper()
	b, err := fs.ReadFile(examples.TracingPolicies, "tracingpolicy/"+name+".yaml")
	FatalIf(t, err)
	text := string(b)
	if edit != nil {
		text = edit(text)
	}
	dir := t.TempDir()
	WritePolicy(t, dir, name+".yaml", text)
	return dir
}

// EnsureFile creates path with content if it does not exist, and removes
// it at the end of the test if it created it.
func EnsureFile(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		return
	}
	FatalIf(t, os.MkdirAll(filepath.Dir(path), 0o755))
	FatalIf(t, os.WriteFile(path, []byte("root:*:19000:0:99999:7:::\n"), 0o600))
	t.Cleanup(func() { os.Remove(path) })
}

func (h *Harness) SetMode(name, mode string) {
	h.T.Helper()
	FatalIf(h.T, agent.NewClient(h.Socket).SetMode(context.Background(), name, mode))
}

// HelperCmd returns the test binary as a helper process doing op.
func HelperCmd(t *testing.T, op string, args ...string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	FatalIf(t, err)
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), "VIGIL_TEST_HELPER="+op)
	return cmd
}

func FlowOf(pid int, dir, proto string) func(Event) bool {
	return func(e Event) bool {
		return e.Get("flow") != nil && int(e.Num("flow.process.pid")) == pid &&
			e.Str("flow.traffic_direction") == dir && e.Get("flow.l4."+proto) != nil
	}
}

// RunHelper runs the test binary as a helper process doing one operation
// and returns the errno it saw. killed reports that it died of SIGKILL.
func RunHelper(t *testing.T, op string, cred *syscall.Credential, args ...string) (errno int, killed bool, pid int) {
	t.Helper()
	self, err := os.Executable()
	FatalIf(t, err)
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
	FatalIf(t, err)
	s, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "errno=")
	if !ok {
		t.Fatalf("helper %s printed %q", op, out)
	}
	n, err := strconv.Atoi(s)
	FatalIf(t, err)
	return n, false, pid
}

// WritePolicy writes a policy file into dir.
func WritePolicy(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	FatalIf(t, os.WriteFile(p, []byte(text), 0o644))
	return p
}

// KillOnOpen is a tracing policy named name whose openat hook kills the
// process that opens path (the name exactly as it passes it).
func KillOnOpen(name, path string) string {
	return fmt.Sprintf(`apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata: {name: %s}
spec:
  kprobes:
  - call: sys_openat
    syscall: true
    args:
    - {index: 1, type: string}
    selectors:
    - matchArgs:
      - {index: 1, operator: Equal, values: [%s]}
      matchActions: [{action: Sigkill}]
`, name, path)
}

// KprobeOf matches the policy event of pid from policy.
func KprobeOf(kind string, pid int, policy string) func(Event) bool {
	return func(e Event) bool {
		return e.Get(kind) != nil && int(e.Num(kind+".process.pid")) == pid && e.Str(kind+".policy_name") == policy
	}
}

func ArgsOf(e Event, kind string) []map[string]any {
	list, _ := e.Get(kind + ".args").([]any)
	var out []map[string]any
	for _, a := range list {
		if m, ok := a.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// PolicyStatus returns the running agent's status of a policy.
func (h *Harness) PolicyStatus(name string) agent.PolicyStatus {
	h.T.Helper()
	list, err := agent.NewClient(h.Socket).Policies(context.Background())
	FatalIf(h.T, err)
	for _, p := range list {
		if p.Name == name {
			return p
		}
	}
	return agent.PolicyStatus{}
}

// WaitPolicy waits until a policy is loaded (or failed, which fails t).
func (h *Harness) WaitPolicy(name string) agent.PolicyStatus {
	h.T.Helper()
	deadline := time.Now().Add(Timeout())
	for time.Now().Before(deadline) {
		st := h.PolicyStatus(name)
		switch st.State {
		case "loaded":
			return st
		case "error":
			h.T.Fatalf("policy %s did not load: %s", name, st.Error)
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.T.Fatalf("policy %s not loaded within %v", name, Timeout())
	return agent.PolicyStatus{}
}

const OpenatPrefixPolicy = `apiVersion: cilium.io/v1alpha1
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

// CountGenericObjects counts the BPF programs of the tracing-policy
// sensor (named generic_*) and its maps (gen_*) that this process holds: the
// agent under test runs in the test process, and other test packages may
// run agents of their own at the same time.
func CountGenericObjects(t *testing.T) (progs, maps int) {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	seenProgs, seenMaps := map[uint64]bool{}, map[uint64]bool{}
	for _, fd := range fds {
		link, err := os.Readlink("/proc/self/fd/" + fd.Name())
		if err != nil || (link != "anon_inode:bpf-prog" && link != "anon_inode:bpf-map") {
			continue
		}
		info, err := os.ReadFile("/proc/self/fdinfo/" + fd.Name())
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(info), "\n") {
			k, v, _ := strings.Cut(line, ":")
			id, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			switch {
			case k == "prog_id" && link == "anon_inode:bpf-prog" && !seenProgs[id]:
				seenProgs[id] = true
				if p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id)); err == nil {
					if pi, err := p.Info(); err == nil && strings.HasPrefix(pi.Name, "generic_") {
						progs++
					}
					p.Close()
				}
			case k == "map_id" && link == "anon_inode:bpf-map" && !seenMaps[id]:
				seenMaps[id] = true
				if m, err := ebpf.NewMapFromID(ebpf.MapID(id)); err == nil {
					if mi, err := m.Info(); err == nil && strings.HasPrefix(mi.Name, "gen_") {
						maps++
					}
					m.Close()
				}
			}
		}
	}
	return progs, maps
}

// Command runs the applet or binary name (such as /bin/echo) through its
// Resolved path, with argv[0] its base name: on the VMs every tool is
// busybox, which picks the applet from argv[0].
func Command(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(Resolved(t, name), args...)
	cmd.Args[0] = filepath.Base(name)
	return cmd
}

// CommandAs runs the executable at path with argv[0] set to applet.
func CommandAs(path, applet string, args ...string) *exec.Cmd {
	cmd := exec.Command(path, args...)
	cmd.Args[0] = applet
	return cmd
}

// CopyExecutable copies a real executable (not a symlink) to dst.
func CopyExecutable(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(Resolved(t, src))
	FatalIf(t, err)
	FatalIf(t, os.WriteFile(dst, b, 0o755))
}

func OpenDir(t *testing.T, dir string) int {
	t.Helper()
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	FatalIf(t, err)
	t.Cleanup(func() { syscall.Close(fd) })
	return fd
}

// Cgroup2Root finds the cgroup v2 mount.
func Cgroup2Root(t *testing.T) string {
	t.Helper()
	mp, err := cgroup.Mountpoint()
	if err != nil {
		kerneltest.Skip(t, "%v", err)
	}
	return mp
}

func AlertOf(id string, pid int) func(Event) bool {
	return func(e Event) bool {
		return e.Str("alert.rule.id") == id && int(e.Num("alert.process.pid")) == pid
	}
}

// Listen listens on addr and answers every connection with "ok".
func Listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	FatalIf(t, err)
	Serve(t, ln)
	return ln
}

func Serve(t *testing.T, ln net.Listener) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c.SetDeadline(time.Now().Add(5 * time.Second))
				io.Copy(io.Discard, io.LimitReader(c, 5))
				c.Write([]byte("ok"))
				c.Close()
			}()
		}
	}()
}

func CopyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	FatalIf(t, err)
	FatalIf(t, os.WriteFile(to, b, mode))
}

// Main runs a test binary of the agent's privileged tests: as the helper
// program when RunHelper (or the network test pods) started it, else the
// tests.
//
// The test binary doubles as a small helper program, so that tests can make
// a process (not the agent, which policies never act on) perform one system
// call and report the errno it saw:
//
//	VIGIL_TEST_HELPER=open PATH | mkdir PATH | finit_module PATH | unshare-user
//
// It prints "errno=N" (0 on success) and exits 0.
func Main(m *testing.M) int {
	testpods.RunHelperIfRequested()
	if op := os.Getenv("VIGIL_TEST_HELPER"); op != "" {
		return helperMain(op, os.Args[1:])
	}
	return m.Run()
}

// Lines returns the lines the agent exported so far, as it wrote them.
func (h *Harness) Lines() [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([][]byte(nil), h.lines...)
}

// progressHook notes when the agent last logged anything.
type progressHook struct{ at atomic.Int64 }

func (p *progressHook) touch()                   { p.at.Store(time.Now().UnixNano()) }
func (p *progressHook) last() time.Time          { return time.Unix(0, p.at.Load()) }
func (p *progressHook) Levels() []logrus.Level   { return logrus.AllLevels }
func (p *progressHook) Fire(*logrus.Entry) error { p.touch(); return nil }
