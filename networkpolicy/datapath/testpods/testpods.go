// Package testpods builds pods for privileged network policy tests: each
// pod is a network namespace with a veth pair on a test bridge (itself in a
// namespace of its own, so nothing touches the host's network) and, for
// pods the datapath polices, a cgroup of its own. A helper process (the
// test binary, re-executed inside the namespace and cgroup) listens and
// probes with real TCP, UDP and SCTP sockets.
//
// Test binaries using it call RunHelperIfRequested first in TestMain.
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
	prefix  string
	fabric  string
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
	netns    string
	CgroupID uint64
	cgdir    string
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	mu       sync.Mutex
	next     int
	waiting  map[int]chan string
}

func run(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// New creates the bridge. cgroupRoot is the cgroup v2 directory under which
// pod cgroups are made. Everything is removed when the test ends.
func New(t testing.TB, cgroupRoot string) *Cluster {
	c := &Cluster{t: t, prefix: fmt.Sprintf("vnp%d", os.Getpid()%100000)}
	c.fabric = c.prefix + "f"
	run(t, "ip", "netns", "add", c.fabric)
	c.cleanup = append(c.cleanup, func() { exec.Command("ip", "netns", "del", c.fabric).Run() })
	run(t, "ip", "-n", c.fabric, "link", "add", "br0", "type", "bridge")
	run(t, "ip", "-n", c.fabric, "link", "set", "br0", "up")
	c.cgroot = filepath.Join(cgroupRoot, "vigil-testpods-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(c.cgroot, 0o755); err != nil {
		c.Close()
		t.Fatalf("create cgroup: %v", err)
	}
	c.cleanup = append(c.cleanup, func() { os.Remove(c.cgroot) })
	t.Cleanup(c.Close)
	return c
}

// Close stops every helper and removes namespaces and cgroups.
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
	e := &Endpoint{Name: name, IPs: ips, netns: fmt.Sprintf("%se%d", c.prefix, n), waiting: map[int]chan string{}}
	run(t, "ip", "netns", "add", e.netns)
	c.mu.Lock()
	c.cleanup = append(c.cleanup, func() { exec.Command("ip", "netns", "del", e.netns).Run() })
	c.mu.Unlock()
	veth := fmt.Sprintf("v%d", n)
	run(t, "ip", "-n", c.fabric, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", e.netns)
	run(t, "ip", "-n", c.fabric, "link", "set", veth, "master", "br0", "up")
	run(t, "ip", "-n", e.netns, "link", "set", "lo", "up")
	run(t, "ip", "-n", e.netns, "link", "set", "eth0", "up")
	for _, ip := range ips {
		if ip.Is4() {
			run(t, "ip", "-n", e.netns, "addr", "add", ip.String()+"/32", "dev", "eth0")
		} else {
			run(t, "ip", "-n", e.netns, "addr", "add", ip.String()+"/128", "dev", "eth0", "nodad")
		}
	}
	run(t, "ip", "-n", e.netns, "route", "add", "default", "dev", "eth0")
	run(t, "ip", "-n", e.netns, "-6", "route", "add", "default", "dev", "eth0")

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	e.cmd = exec.Command("nsenter", "--net=/run/netns/"+e.netns, "--", exe, "-test.run=^$")
	e.cmd.Env = append(os.Environ(), envHelper+"=1")
	e.cmd.Stderr = os.Stderr
	if cgroup {
		e.cgdir = filepath.Join(c.cgroot, fmt.Sprintf("pod%d", n))
		if err := os.Mkdir(e.cgdir, 0o755); err != nil {
			t.Fatalf("create cgroup: %v", err)
		}
		var st unix.Stat_t
		if err := unix.Stat(e.cgdir, &st); err != nil {
			t.Fatal(err)
		}
		e.CgroupID = st.Ino
		fd, err := unix.Open(e.cgdir, unix.O_DIRECTORY|unix.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		e.cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
		dir := e.cgdir
		c.mu.Lock()
		c.cleanup = append(c.cleanup, func() {
			for i := 0; i < 50 && os.Remove(dir) != nil; i++ {
				time.Sleep(20 * time.Millisecond)
			}
		})
		c.mu.Unlock()
	}
	if e.stdin, err = e.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := e.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.cmd.Start(); err != nil {
		t.Fatalf("start helper in %s: %v", e.netns, err)
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

// do sends one command and waits for its reply.
func (e *Endpoint) do(cmd string) string {
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
	case <-time.After(30 * time.Second):
		return errorTag + ": no reply"
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
