package httpproxy

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

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

// inNetns runs fn on a thread switched into the namespace open as fd.
// Sockets fn creates belong to that namespace for good. When the thread
// cannot be switched back it is left locked, so that the runtime ends it.
func inNetns(fd int, fn func() error) error {
	if fd < 0 {
		return fn() // the proxy's own namespace
	}
	runtime.LockOSThread()
	self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open own network namespace: %w", err)
	}
	defer unix.Close(self)
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
