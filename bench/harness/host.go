package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/bench/bpfstats"
	"github.com/vigilsec/vigil/identity/cgroup"
)

// Lock is the benchmark's lock file: one run at a time, so that two runs
// never measure each other.
type Lock struct {
	f    *os.File
	path string
}

// TakeLock takes an exclusive lock on path or says who holds it.
func TakeLock(path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("another benchmark run is active (lock %s held by: %s); wait for it to finish", path, strings.TrimSpace(string(holder)))
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	f.Truncate(0)
	fmt.Fprintf(f, "pid %d since %s: %s\n", os.Getpid(), time.Now().UTC().Format(time.RFC3339), strings.Join(os.Args, " "))
	return &Lock{f: f, path: path}, nil
}

// Held checks that the lock is still ours: the file was not removed or
// replaced by someone else.
func (l *Lock) Held() error {
	var a, b unix.Stat_t
	if err := unix.Fstat(int(l.f.Fd()), &a); err != nil {
		return err
	}
	if err := unix.Stat(l.path, &b); err != nil || a.Ino != b.Ino {
		return fmt.Errorf("lock file %s was removed or replaced during the run", l.path)
	}
	return nil
}

// Release drops the lock.
func (l *Lock) Release() {
	l.f.Truncate(0)
	l.f.Close()
}

// Cgroup2Root finds the cgroup v2 mount in the mount table at mountinfo.
func Cgroup2Root(mountinfo string) (string, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return cgroup.MountpointIn(f)
}

// Cgroups are the benchmark's cgroups under the cgroup2 root.
type Cgroups struct {
	Root string // mount point
	Base string // path as /proc/PID/cgroup shows it, e.g. /vigil-bench
}

// Dir returns the directory of cgroup path sub (relative to Base).
func (c *Cgroups) Dir(sub string) string { return filepath.Join(c.Root, c.Base, sub) }

// Path returns the cgroup path of sub as /proc/PID/cgroup shows it.
func (c *Cgroups) Path(sub string) string { return filepath.Join(c.Base, sub) }

// Make creates cgroup sub and returns a descriptor for starting processes
// in it.
func (c *Cgroups) Make(sub string) (*os.File, error) {
	d := c.Dir(sub)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return nil, fmt.Errorf("create cgroup %s: %w", d, err)
	}
	return os.Open(d)
}

// Remove removes the benchmark's cgroups (deepest first); they must be
// empty.
func (c *Cgroups) Remove() error {
	var dirs []string
	filepath.WalkDir(filepath.Join(c.Root, c.Base), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	var errs []error
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Remove(dirs[i]); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Child describes a workload process.
type Child struct {
	Argv []string
	// Cgroup, when set, is where the process starts (clone3
	// CLONE_INTO_CGROUP).
	Cgroup *os.File
	// Netns, when set, is the named network namespace it runs in (through
	// `ip netns exec`).
	Netns string
	Env   []string
}

func (c Child) command(ctx context.Context) *exec.Cmd {
	argv := c.Argv
	if c.Netns != "" {
		argv = append([]string{"ip", "netns", "exec", c.Netns}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if c.Cgroup != nil {
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = int(c.Cgroup.Fd())
	}
	return cmd
}

// Run runs the child to completion and returns its stdout.
func (c Child) Run(ctx context.Context) ([]byte, error) {
	cmd := c.command(ctx)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w: %s", strings.Join(c.Argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// Start starts a long-running child (a server); stop it with Stop.
func (c Child) Start(ctx context.Context) (*exec.Cmd, error) {
	cmd := c.command(ctx)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", strings.Join(c.Argv, " "), err)
	}
	return cmd, nil
}

// Stop terminates a child started with Start, by its pid.
func Stop(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// ip runs iproute2.
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// NetnsPair is two network namespaces joined by a veth pair: the client
// (198.19.0.1) and the server (198.18.0.1), both in 198.18.0.0/15. Nothing
// of it touches the host's own namespace but the two names.
type NetnsPair struct{ Client, Server string }

// MakeNetns creates the pair (removing leftovers of an earlier run first).
func MakeNetns(prefix string) (*NetnsPair, error) {
	n := &NetnsPair{Client: prefix + "-c", Server: prefix + "-s"}
	n.Remove()
	steps := [][]string{
		{"netns", "add", n.Client},
		{"netns", "add", n.Server},
		{"-n", n.Client, "link", "add", "vb0", "type", "veth", "peer", "name", "vb1", "netns", n.Server},
		{"-n", n.Client, "addr", "add", clientIP + "/15", "dev", "vb0"},
		{"-n", n.Server, "addr", "add", serverIP + "/15", "dev", "vb1"},
		{"-n", n.Client, "link", "set", "lo", "up"},
		{"-n", n.Server, "link", "set", "lo", "up"},
		{"-n", n.Client, "link", "set", "vb0", "up"},
		{"-n", n.Server, "link", "set", "vb1", "up"},
		// Thousands of connects a round leave the client's ports in
		// TIME_WAIT: without reuse and the whole range, later rounds run
		// out of ports (EADDRNOTAVAIL) or measure the port search.
		{"netns", "exec", n.Client, "sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=1024 65535", "net.ipv4.tcp_tw_reuse=1"},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			n.Remove()
			return nil, err
		}
	}
	return n, nil
}

// Remove deletes both namespaces (and so the veth pair).
func (n *NetnsPair) Remove() {
	exec.Command("ip", "netns", "del", n.Client).Run()
	exec.Command("ip", "netns", "del", n.Server).Run()
}

// kernelRelease is uname -r.
func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// ForeignPrograms counts loaded BPF programs with the agent's name
// prefixes that process pid (an agent of this run, 0: none) does not hold:
// other agents or tests on the machine, whose programs run on every
// system call they hook, ours included.
func ForeignPrograms(pid int) int {
	ours := map[ebpf.ProgramID]bool{}
	if pid > 0 {
		ids, _ := bpfstats.ProgramIDs("/proc", pid)
		for _, id := range ids {
			ours[id] = true
		}
	}
	n := 0
	for id := ebpf.ProgramID(0); ; {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			return n
		}
		id = next
		if ours[id] {
			continue
		}
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		info, err := p.Info()
		p.Close()
		if err != nil {
			continue
		}
		for _, pre := range []string{"generic_", "tp_btf_", "raw_tp_", "flow_", "np_"} {
			if strings.HasPrefix(info.Name, pre) {
				n++
				break
			}
		}
	}
}
