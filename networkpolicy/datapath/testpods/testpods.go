package testpods

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const envHelper = "VIGIL_TESTPODS_HELPER"

// Result of a probe.
const (
	Allowed  = "allow"   // the exchange completed
	EPERM    = "eperm"   // the kernel refused at connect or send
	Timeout  = "timeout" // no answer: dropped on the way
	Refused  = "refused" // nothing listens
	NoSCTP   = "nosctp"  // the kernel has no SCTP
	errorTag = "error"
)

// Cluster is a test bridge and the endpoints attached to it.
type Cluster struct {
	t       testing.TB
	fabric  *Endpoint
	cgroot  string
	mu      sync.Mutex
	n       int
	eps     []*Endpoint
	cleanup []func()
}

// Endpoint is a pod or an address outside the cluster.
type Endpoint struct {
	Name     string
	IPs      []netip.Addr
	CgroupID uint64
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	mu       sync.Mutex
	next     int
	waiting  map[int]chan string
}

// New creates the bridge. cgroupRoot is the cgroup v2 directory under which
// pod cgroups are made. Everything is removed when the test ends.
func New(t testing.TB, cgroupRoot string) *Cluster {
	c := &Cluster{t: t}
	t.Cleanup(c.Close)
	c.cgroot = filepath.Join(cgroupRoot, "vigil-testpods-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(c.cgroot, 0o755); err != nil {
		t.Fatalf("create cgroup: %v", err)
	}
	c.cleanup = append(c.cleanup, func() { removeCgroup(c.cgroot) })
	c.fabric = c.start(t, "fabric", -1)
	c.must(c.fabric, "bridge br0")
	c.must(c.fabric, "up br0")
	return c
}

func removeCgroup(dir string) {
	for i := 0; i < 100 && os.Remove(dir) != nil; i++ {
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *Cluster) must(e *Endpoint, cmd string) {
	c.t.Helper()
	if r := e.do(cmd); r != "ok" {
		c.t.Fatalf("%s: %s: %s", e.Name, cmd, r)
	}
}

// Close stops every helper, which removes the namespaces, and removes the
// cgroups.
func (c *Cluster) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.eps {
		e.stop()
	}
	c.eps = nil
	for i := len(c.cleanup) - 1; i >= 0; i-- {
		c.cleanup[i]()
	}
	c.cleanup = nil
}

// start runs a helper in a new network namespace, in the cgroup cgfd when
// it is not negative.
func (c *Cluster) start(t testing.TB, name string, cgfd int) *Endpoint {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	e := &Endpoint{Name: name, waiting: map[int]chan string{}}
	e.cmd = exec.Command(exe, "-test.run=^$")
	e.cmd.Env = append(os.Environ(), envHelper+"=1")
	e.cmd.Stderr = os.Stderr
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	if cgfd >= 0 {
		e.cmd.SysProcAttr.UseCgroupFD = true
		e.cmd.SysProcAttr.CgroupFD = cgfd
	}
	if e.stdin, err = e.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := e.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.cmd.Start(); err != nil {
		t.Fatalf("start helper %s: %v", name, err)
	}
	go e.readReplies(stdout)
	c.mu.Lock()
	c.eps = append(c.eps, e)
	c.mu.Unlock()
	if r := e.do("hello"); r != "ok" {
		t.Fatalf("helper of %s: %s", name, r)
	}
	return e
}

// Add creates an endpoint with the given addresses; with cgroup set it
// gets a cgroup of its own (a pod), otherwise its helper stays in the
// test's cgroup (an address outside the cluster).
func (c *Cluster) Add(name string, ips []netip.Addr, cgroup bool) *Endpoint {
	t := c.t
	t.Helper()
	c.mu.Lock()
	c.n++
	n := c.n
	c.mu.Unlock()
	cgfd := -1
	var cgid uint64
	if cgroup {
		dir := filepath.Join(c.cgroot, fmt.Sprintf("pod%d", n))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatalf("create cgroup: %v", err)
		}
		c.mu.Lock()
		c.cleanup = append(c.cleanup, func() { removeCgroup(dir) })
		c.mu.Unlock()
		var st unix.Stat_t
		if err := unix.Stat(dir, &st); err != nil {
			t.Fatal(err)
		}
		cgid = st.Ino
		fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		cgfd = fd
	}
	e := c.start(t, name, cgfd)
	e.IPs, e.CgroupID = ips, cgid
	veth := fmt.Sprintf("v%d", n)
	c.must(c.fabric, fmt.Sprintf("veth %s eth0 %d", veth, e.PID()))
	c.must(c.fabric, fmt.Sprintf("up %s br0", veth))
	c.must(e, "up lo")
	c.must(e, "up eth0")
	for _, ip := range ips {
		c.must(e, "addr eth0 "+ip.String())
	}
	c.must(e, "route eth0 4")
	c.must(e, "route eth0 6")
	return e
}

func (e *Endpoint) stop() {
	if e.stdin != nil {
		e.stdin.Close()
	}
	if e.cmd != nil && e.cmd.Process != nil {
		done := make(chan struct{})
		go func() { e.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			e.cmd.Process.Kill()
			<-done
		}
	}
}

func (e *Endpoint) readReplies(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		id, rest, _ := strings.Cut(sc.Text(), " ")
		n, _ := strconv.Atoi(id)
		e.mu.Lock()
		ch := e.waiting[n]
		delete(e.waiting, n)
		e.mu.Unlock()
		if ch != nil {
			ch <- rest
		}
	}
	e.mu.Lock()
	for n, ch := range e.waiting {
		ch <- errorTag + ": helper exited"
		delete(e.waiting, n)
	}
	e.mu.Unlock()
}

// do sends one command and waits up to 30 s for its reply.
func (e *Endpoint) do(cmd string) string { return e.doWithin(cmd, 30*time.Second) }

// doWithin sends one command and waits up to wait for its reply: commands
// whose work grows with an argument (dnsloop) give it room to grow on the
// VM tier's emulated CPUs.
func (e *Endpoint) doWithin(cmd string, wait time.Duration) string {
	ch := make(chan string, 1)
	e.mu.Lock()
	e.next++
	n := e.next
	e.waiting[n] = ch
	_, err := fmt.Fprintf(e.stdin, "%d %s\n", n, cmd)
	e.mu.Unlock()
	if err != nil {
		return errorTag + ": " + err.Error()
	}
	select {
	case r := <-ch:
		return r
	case <-time.After(wait):
		return fmt.Sprintf("%s: no reply to %q within %s", errorTag, cmd, wait)
	}
}

// Listen serves proto ("tcp", "udp", "sctp") on port: TCP and SCTP accept
// and echo, UDP echoes datagrams. It returns NoSCTP when the kernel lacks
// SCTP.
func (e *Endpoint) Listen(proto string, port uint16) string {
	return e.do(fmt.Sprintf("listen %s %d", proto, port))
}

// Probe opens a connection (TCP, SCTP, connected UDP with "udp-connect")
// or sends a datagram ("udp") to addr and waits for the echo. It returns
// Allowed, EPERM, Timeout, Refused or an error text.
func (e *Endpoint) Probe(proto string, addr netip.AddrPort, timeout time.Duration) string {
	return e.do(fmt.Sprintf("probe %s %s %d", proto, addr, timeout.Milliseconds()))
}

// PID is the helper process's pid (the pod's "container process").
func (e *Endpoint) PID() int { return e.cmd.Process.Pid }

// Command runs a helper command and returns its reply (for benchmarks).
func (e *Endpoint) Command(cmd string) string { return e.do(cmd) }

// RunHelperIfRequested turns the process into an endpoint helper when the
// test binary was re-executed by Add. Call it first in TestMain.
func RunHelperIfRequested() {
	if os.Getenv(envHelper) != "1" {
		return
	}
	os.Exit(helperMain(os.Stdin, os.Stdout))
}

var errNoSCTP = errors.New("no SCTP")
