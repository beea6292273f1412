package httpproxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Netns is a network namespace a listener is wanted in.
type Netns struct {
	// Key identifies the namespace (device and inode of its nsfs file).
	Key string
	// Path opens it: /proc/PID/ns/net or /run/netns/NAME; empty: the
	// proxy's own namespace (pods on the host network).
	Path string
}

// NetnsOf returns the network namespace of a file such as /proc/PID/ns/net.
func NetnsOf(path string) (Netns, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return Netns{}, fmt.Errorf("network namespace %s: %w", path, err)
	}
	return Netns{Key: fmt.Sprintf("%d:%d", st.Dev, st.Ino), Path: path}, nil
}

// ErrNoProcess means a cgroup has no process to read a namespace from.
var ErrNoProcess = errors.New("no process in the cgroup")

// NetnsOfCgroup returns the network namespace of the first process of a
// cgroup directory (a pod's processes share one).
func NetnsOfCgroup(dir string) (Netns, error) {
	f, err := os.Open(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return Netns{}, fmt.Errorf("network namespace of cgroup %s: %w", dir, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pid, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
		if err != nil {
			continue
		}
		ns, err := NetnsOf(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err == nil {
			return ns, nil
		}
	}
	return Netns{}, fmt.Errorf("network namespace of cgroup %s: %w", dir, ErrNoProcess)
}

// ownNetns is the process's network namespace, which threads return to.
var ownNetns = sync.OnceValues(func() (int, error) {
	fd, err := unix.Open("/proc/self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open own network namespace: %w", err)
	}
	return fd, nil
})

// inNetns runs fn on a thread switched into the namespace open as fd.
// Sockets fn creates belong to that namespace for good. When the thread
// cannot be switched back it is left locked, so that the runtime ends it.
// fn must not block: the thread is the goroutine's alone meanwhile.
func inNetns(fd int, fn func() error) error {
	if fd < 0 {
		return fn() // the proxy's own namespace
	}
	self, err := ownNetns()
	if err != nil {
		return err
	}
	runtime.LockOSThread()
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace: %w", err)
	}
	ferr := fn()
	if err := unix.Setns(self, unix.CLONE_NEWNET); err != nil {
		return errors.Join(ferr, fmt.Errorf("leave network namespace: %w", err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// listenIn listens on addr in the namespace open as fd.
func listenIn(fd int, addr string) (net.Listener, error) {
	var l net.Listener
	err := inNetns(fd, func() error {
		var err error
		l, err = net.Listen("tcp4", addr)
		return err
	})
	return l, err
}

// dialIn connects to dst from the namespace open as fd: the socket is made
// there (on a switched thread, which is quick) and the connect is waited
// for in the runtime's poller, with no thread held.
func dialIn(ctx context.Context, fd int, dst netip.AddrPort, timeout time.Duration) (*net.TCPConn, error) {
	if fd < 0 {
		d := net.Dialer{Timeout: timeout}
		c, err := d.DialContext(ctx, "tcp4", dst.String())
		if err != nil {
			return nil, err
		}
		return c.(*net.TCPConn), nil
	}
	var sfd int
	if err := inNetns(fd, func() error {
		var err error
		sfd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		return err
	}); err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	f := os.NewFile(uintptr(sfd), "upstream")
	defer f.Close()
	sa := &unix.SockaddrInet4{Port: int(dst.Port()), Addr: dst.Addr().As4()}
	if err := unix.Connect(sfd, sa); err != nil && !errors.Is(err, unix.EINPROGRESS) {
		return nil, &net.OpError{Op: "dial", Net: "tcp4", Addr: net.TCPAddrFromAddrPort(dst), Err: os.NewSyscallError("connect", err)}
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = f.SetWriteDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = f.SetWriteDeadline(time.Now()) })
	defer stop()
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cerr error
	// Called at once and after each wake-up: done when the connect
	// failed (SO_ERROR) or completed (a peer); false waits for the
	// socket to become writable.
	werr := rc.Write(func(fd uintptr) bool {
		v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			cerr = err
			return true
		}
		if v != 0 {
			cerr = unix.Errno(v)
			return true
		}
		_, err = unix.Getpeername(int(fd))
		return err == nil
	})
	if werr != nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp4", Addr: net.TCPAddrFromAddrPort(dst), Err: werr}
	}
	if cerr != nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp4", Addr: net.TCPAddrFromAddrPort(dst), Err: os.NewSyscallError("connect", cerr)}
	}
	_ = f.SetWriteDeadline(time.Time{})
	c, err := net.FileConn(f)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}
