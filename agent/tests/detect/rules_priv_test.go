package detect_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vigilsec/vigil/agent/agenttest"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/agent"
	"github.com/vigilsec/vigil/internal/kerneltest"
)

// Every default detection rule raised by doing what it detects, through an
// agent running the default policies and rules; each behaviour's benign
// counterpart runs first and must raise nothing. "The container" is a
// cgroup that a Workload file makes the pod shop/web.
//
// VIGIL_RULES_RECORD=FILE writes every exported event of the run to FILE
// (recorded events for rules/testdata).
func TestPrivDefaultRules(t *testing.T) {
	root := agenttest.Cgroup2Root(t)
	name := fmt.Sprintf("vigil-rules-%d", os.Getpid())
	cg := filepath.Join(root, name)
	agenttest.FatalIf(t, os.Mkdir(cg, 0o755))
	t.Cleanup(func() { os.Remove(cg) })
	wl := agenttest.WritePolicy(t, t.TempDir(), "workloads.yaml", fmt.Sprintf(`apiVersion: vigil.dev/v1alpha1
kind: Workload
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {cgroupPath: /%s}
`, name))
	h := agenttest.StartAgent(t, func(c *agent.Config) {
		c.NoDefaultPolicies = false
		c.Rules.NoDefaultRules = false
		c.Identity.WorkloadFiles = []string{wl}
		c.Identity.CRIEndpoints = []string{"none"}
		c.Identity.Kubernetes = "off"
	})
	for _, p := range []string{"default-file-access", "default-detections", "default-system-changes", "default-file-changes"} {
		h.WaitPolicy(p)
	}
	if out := os.Getenv("VIGIL_RULES_RECORD"); out != "" {
		t.Cleanup(func() {
			var b []byte
			for _, l := range h.Lines() {
				b = append(b, l...)
			}
			agenttest.FatalIf(t, os.WriteFile(out, b, 0o644))
		})
	}

	self, err := os.Executable()
	agenttest.FatalIf(t, err)
	// Programs are placed outside /tmp, so that only the rule about
	// temporary directories looks at where they run from.
	work := fmt.Sprintf("/var/lib/vigil-rules-test-%d", os.Getpid())
	agenttest.FatalIf(t, os.MkdirAll(work, 0o755))
	t.Cleanup(func() { os.RemoveAll(work) })
	// named is this test binary under another name, running helper op.
	named := func(dir, base string) string {
		p := filepath.Join(dir, base)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		if err := os.Link(self, p); err != nil {
			agenttest.CopyFile(t, self, p, 0o755)
		}
		return p
	}
	tool := func(t *testing.T, name string) string {
		t.Helper()
		return kerneltest.NeedTool(t, name)
	}
	// applet returns the tool as a program of its own name: an applet of
	// a multi-call binary (busybox, as in the VM tier's initramfs) runs as
	// /bin/busybox, which exec events name instead of the tool, so a copy
	// of the multi-call binary under the tool's name stands in for it
	// (busybox picks the applet from its name).
	applet := func(t *testing.T, path string) string {
		t.Helper()
		real, err := filepath.EvalSymlinks(path)
		if err != nil || filepath.Base(real) != "busybox" {
			return path
		}
		p := filepath.Join(work, filepath.Base(path))
		agenttest.CopyFile(t, real, p, 0o755)
		return p
	}
	inPod := func(cmd *exec.Cmd) *exec.Cmd {
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, agenttest.OpenDir(t, cg)
		return cmd
	}
	helper := func(path, op string, args ...string) *exec.Cmd {
		cmd := exec.Command(path, args...)
		cmd.Env = append(os.Environ(), "VIGIL_TEST_HELPER="+op)
		return cmd
	}
	// run runs cmd to its end; its exit status does not matter (a program
	// copied under another name may refuse to run, its exec still counts).
	run := func(cmd *exec.Cmd) int {
		t.Helper()
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("%s: %v: %s", cmd, err, out)
		}
		return cmd.Process.Pid
	}
	// detect is path running an operation of this package's helper
	// (main_test.go).
	detect := func(path, op string, args ...string) *exec.Cmd {
		cmd := exec.Command(path, args...)
		cmd.Env = append(os.Environ(), "VIGIL_DETECT_HELPER="+op)
		return cmd
	}
	// spawned runs parent (a copy of this binary under a server's or a
	// tool's name) starting child with args, and returns the child's pid;
	// next, when set, is the detection helper operation the child runs.
	spawned := func(t *testing.T, parent, next, child string, args ...string) int {
		t.Helper()
		cmd := detect(parent, "spawn", append([]string{child}, args...)...)
		if next != "" {
			cmd.Env = append(cmd.Env, "VIGIL_DETECT_NEXT="+next)
		}
		out, err := cmd.CombinedOutput()
		var pid int
		if _, serr := fmt.Sscanf(string(out), "pid=%d", &pid); err != nil || serr != nil {
			t.Fatalf("%s: %v: %s", cmd, err, out)
		}
		return pid
	}
	// inPidNS runs cmd in a PID namespace of its own (and a mount
	// namespace, so that what it mounts stays there): a container as the
	// kernel sees it, with no pod.
	inPidNS := func(cmd *exec.Cmd) *exec.Cmd {
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWPID | syscall.CLONE_NEWNS
		return cmd
	}
	inMountNS := func(cmd *exec.Cmd) *exec.Cmd {
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
		return cmd
	}
	as := func(uid int, cmd *exec.Cmd) *exec.Cmd {
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}
		return cmd
	}
	// expect waits for rule id's alert on pid, then checks that nothing
	// the benign pids did raised it (they ran first, and rules evaluate
	// events in order).
	expect := func(t *testing.T, id string, pid int, benign ...int) agenttest.Event {
		t.Helper()
		a, ok := h.Find(agenttest.Timeout(), agenttest.AlertOf(id, pid))
		if !ok {
			// Say what the agent saw of pid and what it lost, so that a
			// miss tells a missing event from a missing pod or a drop.
			var seen []string
			for _, e := range h.All(agenttest.ExecOf(pid)) {
				seen = append(seen, fmt.Sprintf("exec of %s in pod %v", e.Str("process_exec.process.binary"), e.Get("process_exec.process.pod")))
			}
			for _, e := range h.All(func(e agenttest.Event) bool { return e.Get("lost_events") != nil }) {
				seen = append(seen, fmt.Sprintf("lost %v", e.Get("lost_events")))
			}
			t.Fatalf("no %s alert for pid %d within %v; the stream had: %v", id, pid, agenttest.Timeout(), seen)
		}
		if a.Str("alert.rule.severity") == "" || a.Get("alert.rule.mitre") == nil || a.Str("alert.description") == "" || a.Get("alert.event") == nil {
			t.Errorf("%s alert lacks its rule, description or event: %s", id, a)
		}
		for _, b := range benign {
			for _, x := range h.All(agenttest.AlertOf(id, b)) {
				t.Errorf("benign counterpart (pid %d) raised %s: %s", b, id, x.Str("alert.description"))
			}
		}
		return a
	}

	t.Run("shell in a container", func(t *testing.T) {
		sh := applet(t, tool(t, "sh"))
		script := func(cmd *exec.Cmd) *exec.Cmd { cmd.Stdin = strings.NewReader("exit 0\n"); return cmd }
		b1 := run(inPod(exec.Command(sh, "-c", "true")))
		b2 := run(script(exec.Command(sh)))
		pid := run(inPod(script(exec.Command(sh))))
		a := expect(t, "VGL-EXEC-001", pid, b1, b2)
		if a.Str("alert.pod.name") != "web" || a.Str("alert.pod.namespace") != "shop" {
			t.Errorf("alert pod: %v", a.Get("alert.pod"))
		}
	})

	t.Run("sensitive file read", func(t *testing.T) {
		cat := tool(t, "cat")
		if _, err := os.Stat("/etc/shadow"); errors.Is(err, os.ErrNotExist) {
			agenttest.FatalIf(t, os.WriteFile("/etc/shadow", []byte("root:*:19000:0:99999:7:::\n"), 0o640))
			t.Cleanup(func() { os.Remove("/etc/shadow") })
		}
		plain := filepath.Join(work, "notes.txt")
		agenttest.FatalIf(t, os.WriteFile(plain, []byte("hello\n"), 0o644))
		b := run(exec.Command(cat, plain))
		pid := run(exec.Command(cat, "/etc/shadow"))
		expect(t, "VGL-CRED-001", pid, b)
	})

	t.Run("write below /etc", func(t *testing.T) {
		target := fmt.Sprintf("/etc/vigil-rules-test-%d", os.Getpid())
		t.Cleanup(func() { os.Remove(target) })
		b := run(helper(self, "open-write", filepath.Join(work, "out"), "create"))
		pid := run(helper(self, "open-write", target, "create"))
		expect(t, "VGL-PERS-001", pid, b)
	})

	t.Run("netcat remote execution", func(t *testing.T) {
		nc := named(work, "nc")
		b := run(helper(nc, "noop", "-z", "127.0.0.1", "9"))
		pid := run(helper(nc, "noop", "-e", "/bin/sh", "127.0.0.1", "9"))
		expect(t, "VGL-EXEC-002", pid, b)
	})

	t.Run("reverse shell", func(t *testing.T) {
		ln := agenttest.Listen(t, "127.0.0.1:0")
		py := named(work, "python3")
		b := run(helper(py, "dup-pipe"))
		pid := run(helper(py, "dup-socket", ln.Addr().String()))
		a := expect(t, "VGL-EXEC-003", pid, b)
		if a.Str("alert.event.process_kprobe.args.0.file_arg.path") != "socket:" {
			// args is a list: check through the generic walker.
			args, _ := a.Get("alert.event.process_kprobe.args").([]any)
			if len(args) == 0 || fmt.Sprint(args[0]) != "map[file_arg:map[open_flags:O_RDWR path:socket:] label:oldfd]" {
				t.Errorf("dup2 argument: %v", args)
			}
		}
	})

	t.Run("kubernetes API server from a container", func(t *testing.T) {
		api, err := net.Listen("tcp", "127.0.0.1:6443")
		if err != nil {
			kerneltest.Skip(t, "port 6443 is taken on this machine: %v", err)
		}
		agenttest.Serve(t, api)
		other := agenttest.Listen(t, "127.0.0.1:0")
		b := run(inPod(helper(self, "tcp-send", other.Addr().String())))
		pid := run(inPod(helper(self, "tcp-send", "127.0.0.1:6443")))
		a := expect(t, "VGL-DISC-001", pid, b)
		if a.Get("alert.event.flow") == nil {
			t.Errorf("alert event is not the flow: %s", a)
		}
	})

	t.Run("packet socket", func(t *testing.T) {
		b := run(helper(self, "inet-socket"))
		pid := run(helper(self, "packet-socket"))
		expect(t, "VGL-DISC-002", pid, b)
	})

	t.Run("kernel module", func(t *testing.T) {
		if _, err := os.Stat("/proc/modules"); err != nil {
			kerneltest.Skip(t, "this kernel has no loadable module support: finit_module cannot be traced (default-kernel-modules does not load)")
		}
		h.WaitPolicy("default-kernel-modules")
		mod := filepath.Join(work, "not-a-module.ko")
		agenttest.FatalIf(t, os.WriteFile(mod, []byte("not an ELF module"), 0o644))
		// Every module load is reported: there is no benign counterpart.
		pid := run(helper(self, "finit_module", mod))
		expect(t, "VGL-PERS-002", pid)
	})

	t.Run("ptrace attach", func(t *testing.T) {
		target := exec.Command(tool(t, "sleep"), "30")
		agenttest.FatalIf(t, target.Start())
		t.Cleanup(func() { target.Process.Kill(); target.Wait() })
		tp := fmt.Sprint(target.Process.Pid)
		b := run(helper(self, "ptrace-peek", tp))
		pid := run(helper(self, "ptrace-attach", tp))
		expect(t, "VGL-PRIV-001", pid, b)
	})

	t.Run("execution from /tmp", func(t *testing.T) {
		dir, err := os.MkdirTemp("/tmp", "vigil-rules-")
		agenttest.FatalIf(t, err)
		t.Cleanup(func() { os.RemoveAll(dir) })
		b := run(helper(named(work, "payload"), "noop"))
		pid := run(helper(named(dir, "payload"), "noop"))
		expect(t, "VGL-EXEC-004", pid, b)
	})

	t.Run("fileless execution", func(t *testing.T) {
		b := run(helper(self, "noop"))
		pid := run(helper(self, "memfd-exec"))
		a := expect(t, "VGL-DEF-001", pid, b)
		if a.Get("alert.event.process_exec.process.binary_properties.memfd") != true {
			t.Errorf("exec event: %v", a.Get("alert.event.process_exec.process.binary_properties"))
		}
	})

	t.Run("loader hijack through the environment", func(t *testing.T) {
		withEnv := func(cmd *exec.Cmd, env ...string) *exec.Cmd { cmd.Env = append(cmd.Env, env...); return cmd }
		// A fakeroot preload and plain tunables are ordinary.
		b1 := run(withEnv(helper(self, "noop"), "LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libfakeroot/libfakeroot-sysv.so"))
		b2 := run(withEnv(helper(self, "noop"), "GLIBC_TUNABLES=glibc.malloc.check=1"))
		// The launcher is started with the preload (detected); the program
		// it runs inherits it (not reported again).
		cmd := withEnv(detect(named(work, "launcher"), "spawn", tool(t, "true")), "LD_PRELOAD="+work+"/.hook.so")
		out, err := cmd.Output()
		var child int
		if _, serr := fmt.Sscanf(string(out), "pid=%d", &child); err != nil || serr != nil {
			t.Fatalf("%s: %v: %s", cmd, err, out)
		}
		a := expect(t, "VGL-DEF-005", cmd.Process.Pid, b1, b2)
		env, _ := a.Get("alert.event.process_exec.process.environment_variables").([]any)
		if len(env) != 1 || fmt.Sprint(env[0]) != fmt.Sprintf("map[Key:LD_PRELOAD Value:%s/.hook.so]", work) {
			t.Errorf("exec event's environment_variables: %v", env)
		}
		// Tunables shaped like the CVE-2023-4911 overflow; run after the
		// child, so its alert means the child's exec was evaluated.
		pid := run(withEnv(helper(self, "noop"), "GLIBC_TUNABLES=glibc.malloc.mxfast=glibc.malloc.mxfast=A"))
		expect(t, "VGL-DEF-005", pid, child)
	})

	t.Run("new binary in a container", func(t *testing.T) {
		base := filepath.Join(work, "overlay")
		dirs := map[string]string{}
		for _, d := range []string{"lower", "upper", "work", "merged"} {
			dirs[d] = filepath.Join(base, d)
			agenttest.FatalIf(t, os.MkdirAll(dirs[d], 0o755))
		}
		truePath := tool(t, "true")
		agenttest.CopyFile(t, truePath, filepath.Join(dirs["lower"], "inimage"), 0o755)
		opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", dirs["lower"], dirs["upper"], dirs["work"])
		if err := unix.Mount("overlay", dirs["merged"], "overlay", 0, opts); err != nil {
			kerneltest.Skip(t, "cannot mount an overlay here: %v", err)
		}
		t.Cleanup(func() { unix.Unmount(dirs["merged"], unix.MNT_DETACH) })
		agenttest.CopyFile(t, truePath, filepath.Join(dirs["merged"], "dropped"), 0o755)
		b := run(inPod(exec.Command(filepath.Join(dirs["merged"], "inimage"))))
		pid := run(inPod(exec.Command(filepath.Join(dirs["merged"], "dropped"))))
		expect(t, "VGL-EXEC-005", pid, b)
	})

	t.Run("clearing logs", func(t *testing.T) {
		agenttest.FatalIf(t, os.MkdirAll("/var/log", 0o755))
		log := fmt.Sprintf("/var/log/vigil-rules-test-%d.log", os.Getpid())
		t.Cleanup(func() { os.Remove(log) })
		b1 := run(helper(self, "open-write", log, "create"))
		b2 := run(helper(self, "open-write", log, "append"))
		trunc := run(helper(self, "open-write", log, "trunc"))
		expect(t, "VGL-DEF-002", trunc, b1, b2)
		rm := run(helper(self, "unlink", log))
		expect(t, "VGL-DEF-002", rm)
	})

	t.Run("searching for private keys", func(t *testing.T) {
		grep := applet(t, tool(t, "grep"))
		dir := filepath.Join(work, "notes")
		agenttest.FatalIf(t, os.MkdirAll(dir, 0o755))
		agenttest.FatalIf(t, os.WriteFile(filepath.Join(dir, "todo.txt"), []byte("hello\n"), 0o644))
		b := run(exec.Command(grep, "-r", "hello", dir))
		pid := run(exec.Command(grep, "-r", "BEGIN RSA PRIVATE KEY", dir))
		expect(t, "VGL-CRED-002", pid, b)
	})

	t.Run("unprivileged user namespace", func(t *testing.T) {
		unshare := tool(t, "unshare")
		b := run(exec.Command(unshare, "-U", "true"))
		cmd := exec.Command(unshare, "-U", "true")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		pid := run(cmd)
		expect(t, "VGL-PRIV-002", pid, b)
	})

	t.Run("set-user-ID program in a container", func(t *testing.T) {
		truePath := tool(t, "true")
		plain, suid := filepath.Join(work, "plain"), filepath.Join(work, "suid")
		agenttest.CopyFile(t, truePath, plain, 0o755)
		agenttest.CopyFile(t, truePath, suid, 0o755)
		agenttest.FatalIf(t, os.Chmod(suid, 0o755|os.ModeSetuid))
		b := run(inPod(exec.Command(plain)))
		pid := run(inPod(exec.Command(suid)))
		expect(t, "VGL-PRIV-003", pid, b)
	})

	t.Run("shell in a plain PID namespace", func(t *testing.T) {
		sh := applet(t, tool(t, "sh"))
		script := func(cmd *exec.Cmd) *exec.Cmd { cmd.Stdin = strings.NewReader("exit 0\n"); return cmd }
		b := run(inPidNS(exec.Command(sh, "-c", "true")))
		pid := run(inPidNS(script(exec.Command(sh))))
		a := expect(t, "VGL-EXEC-001", pid, b)
		if a.Get("alert.pod") != nil || !strings.Contains(a.Str("alert.description"), "PID namespace") {
			t.Errorf("alert of a container without a pod: pod %v, %q", a.Get("alert.pod"), a.Str("alert.description"))
		}
	})

	t.Run("sensitive file read through a traversal or a relative path", func(t *testing.T) {
		cat := tool(t, "cat")
		if _, err := os.Stat("/etc/shadow"); errors.Is(err, os.ErrNotExist) {
			agenttest.FatalIf(t, os.WriteFile("/etc/shadow", []byte("root:*:19000:0:99999:7:::\n"), 0o640))
			t.Cleanup(func() { os.Remove("/etc/shadow") })
		}
		other := filepath.Join(work, "notes", "shadow")
		agenttest.FatalIf(t, os.MkdirAll(filepath.Dir(other), 0o755))
		agenttest.FatalIf(t, os.WriteFile(other, []byte("a file of the same name\n"), 0o644))
		b1 := run(exec.Command(cat, other))
		b2 := run(helper(named(work, "kubectl"), "open", "/root/.kube/config"))
		pid := run(exec.Command(cat, "/etc/../etc/shadow"))
		a := expect(t, "VGL-CRED-001", pid, b1, b2)
		if !strings.Contains(a.Str("alert.description"), "traversal") {
			t.Errorf("description %q", a.Str("alert.description"))
		}
		rel := exec.Command(cat, "shadow")
		rel.Dir = "/etc"
		pid = run(rel)
		a = expect(t, "VGL-CRED-001", pid)
		if d := a.Str("alert.description"); !strings.Contains(d, "/etc/shadow (as shadow)") {
			t.Errorf("description %q", d)
		}
		// A user's SSH key, wherever the home directory is.
		key := filepath.Join(work, "home", "dev", ".ssh", "id_ed25519")
		agenttest.FatalIf(t, os.MkdirAll(filepath.Dir(key), 0o700))
		agenttest.FatalIf(t, os.WriteFile(key, []byte("not a key\n"), 0o600))
		b := run(helper(named(work, "ssh"), "open", key))
		pid = run(exec.Command(cat, key))
		expect(t, "VGL-CRED-001", pid, b)
	})

	t.Run("link to a sensitive file", func(t *testing.T) {
		plain := filepath.Join(work, "plain.txt")
		agenttest.FatalIf(t, os.WriteFile(plain, []byte("x\n"), 0o644))
		b1 := run(detect(self, "link", plain, filepath.Join(work, "plain-link")))
		b2 := run(detect(self, "symlink", plain, filepath.Join(work, "plain-symlink")))
		hard := run(detect(self, "link", "/etc/shadow", filepath.Join(work, "hard")))
		expect(t, "VGL-CRED-003", hard, b1, b2)
		soft := run(detect(self, "symlink", "../../../etc/shadow", filepath.Join(work, "soft")))
		a := expect(t, "VGL-CRED-003", soft)
		if !strings.Contains(a.Str("alert.description"), "symbolic link") {
			t.Errorf("description %q", a.Str("alert.description"))
		}
	})

	t.Run("file moved into a binary directory", func(t *testing.T) {
		agenttest.FatalIf(t, os.MkdirAll("/usr/local/bin", 0o755))
		src := filepath.Join(work, "planted")
		agenttest.CopyFile(t, tool(t, "true"), src, 0o755)
		dst := fmt.Sprintf("/usr/local/bin/vigil-rules-test-%d", os.Getpid())
		t.Cleanup(func() { os.Remove(dst) })
		b := run(detect(self, "rename", src, filepath.Join(work, "planted2")))
		pid := run(detect(self, "rename", filepath.Join(work, "planted2"), dst))
		expect(t, "VGL-PERS-003", pid, b)
	})

	t.Run("set-user-ID bit set", func(t *testing.T) {
		f := filepath.Join(work, "chmod-me")
		agenttest.CopyFile(t, tool(t, "true"), f, 0o755)
		b := run(detect(self, "chmod", f, "755"))
		pid := run(detect(self, "chmod", f, "4755"))
		a := expect(t, "VGL-PRIV-004", pid, b)
		if !strings.Contains(a.Str("alert.description"), "4755") {
			t.Errorf("description %q", a.Str("alert.description"))
		}
	})

	t.Run("directory created below a binary directory", func(t *testing.T) {
		agenttest.FatalIf(t, os.MkdirAll("/usr/local/bin", 0o755))
		dir := fmt.Sprintf("/usr/local/bin/vigil-rules-dir-%d", os.Getpid())
		t.Cleanup(func() { os.Remove(dir) })
		b := run(helper(self, "mkdir", filepath.Join(work, "a-dir")))
		pid := run(helper(self, "mkdir", dir))
		expect(t, "VGL-PERS-004", pid, b)
	})

	t.Run("shell history removed", func(t *testing.T) {
		hist, notes := filepath.Join(work, ".bash_history"), filepath.Join(work, "notes.txt")
		agenttest.FatalIf(t, os.WriteFile(hist, []byte("ls\n"), 0o600))
		agenttest.FatalIf(t, os.WriteFile(notes, []byte("x\n"), 0o600))
		b := run(helper(self, "unlink", notes))
		pid := run(helper(self, "unlink", hist))
		expect(t, "VGL-DEF-003", pid, b)
	})

	t.Run("mount in a container, debugfs mounted", func(t *testing.T) {
		mnt := filepath.Join(work, "mnt")
		agenttest.FatalIf(t, os.MkdirAll(mnt, 0o755))
		b := run(inMountNS(detect(self, "mount", mnt, "tmpfs")))
		pid := run(inPidNS(detect(self, "mount", mnt, "tmpfs")))
		expect(t, "VGL-PRIV-005", pid, b)
		pid = run(inMountNS(detect(self, "mount", mnt, "debugfs")))
		a := expect(t, "VGL-PRIV-005", pid)
		if !strings.Contains(a.Str("alert.description"), "debugfs") {
			t.Errorf("description %q", a.Str("alert.description"))
		}
	})

	t.Run("release_agent written", func(t *testing.T) {
		f := filepath.Join(work, "cgroup", "release_agent")
		agenttest.FatalIf(t, os.MkdirAll(filepath.Dir(f), 0o755))
		agenttest.FatalIf(t, os.WriteFile(f, nil, 0o644))
		b := run(helper(self, "open", f))
		pid := run(helper(self, "open-write", f, "trunc"))
		expect(t, "VGL-PRIV-006", pid, b)
	})

	t.Run("SSH authorized keys and shell start-up files changed", func(t *testing.T) {
		home := filepath.Join(work, "home", "user")
		keys, rc := filepath.Join(home, ".ssh", "authorized_keys"), filepath.Join(home, ".bashrc")
		agenttest.FatalIf(t, os.MkdirAll(filepath.Dir(keys), 0o700))
		agenttest.FatalIf(t, os.WriteFile(keys, nil, 0o600))
		agenttest.FatalIf(t, os.WriteFile(rc, nil, 0o644))
		b := run(helper(self, "open", keys))
		pid := run(helper(self, "open-write", keys, "append"))
		expect(t, "VGL-PERS-005", pid, b)
		b1 := run(helper(self, "open", rc))
		b2 := run(helper(named(work, "vim"), "open-write", rc, "append"))
		pid = run(helper(self, "open-write", rc, "append"))
		expect(t, "VGL-PERS-006", pid, b1, b2)
	})

	t.Run("anti-debugging with PTRACE_TRACEME", func(t *testing.T) {
		// A traced process stops at any signal until its tracer lets it
		// go, and the tracers here only wait for exits: the helper must
		// receive none, so the Go runtime's preemption signal is off (a
		// slow VM makes the helper run long enough to get one).
		quiet := func(cmd *exec.Cmd) *exec.Cmd {
			cmd.Env = append(cmd.Env, "GODEBUG=asyncpreemptoff=1")
			return cmd
		}
		gdb := quiet(detect(named(work, "gdb"), "spawn", self))
		gdb.Env = append(gdb.Env, "VIGIL_DETECT_NEXT=ptrace-traceme")
		out, err := gdb.CombinedOutput()
		var b int
		if _, serr := fmt.Sscanf(string(out), "pid=%d", &b); err != nil || serr != nil {
			t.Fatalf("%s: %v: %s", gdb, err, out)
		}
		pid := run(quiet(detect(self, "ptrace-traceme")))
		expect(t, "VGL-DEF-004", pid, b)
	})

	t.Run("namespace entered", func(t *testing.T) {
		// Another process's mount namespace: a sleep in one of its own.
		other := inMountNS(exec.Command(tool(t, "sleep"), "30"))
		agenttest.FatalIf(t, other.Start())
		t.Cleanup(func() { other.Process.Kill(); other.Wait() })
		b := run(detect(self, "setns", "/proc/self/ns/net", fmt.Sprint(unix.CLONE_NEWNET)))
		pid := run(detect(self, "setns", fmt.Sprintf("/proc/%d/ns/mnt", other.Process.Pid), fmt.Sprint(unix.CLONE_NEWNS)))
		a := expect(t, "VGL-PRIV-007", pid, b)
		if !strings.Contains(a.Str("alert.description"), "mount") {
			t.Errorf("description %q", a.Str("alert.description"))
		}
	})

	t.Run("userfaultfd by an unprivileged process", func(t *testing.T) {
		b := run(detect(self, "userfaultfd"))
		pid := run(as(65534, detect(named(work, "uffd"), "userfaultfd")))
		expect(t, "VGL-PRIV-008", pid, b)
	})

	t.Run("crypto-miner", func(t *testing.T) {
		worker := named(work, "worker")
		b := run(helper(worker, "noop", "-o", "http://127.0.0.1:3333"))
		pid := run(helper(worker, "noop", "-o", "stratum+tcp://127.0.0.1:3333", "-u", "wallet"))
		expect(t, "VGL-IMP-001", pid, b)
		pid = run(helper(named(work, "xmrig"), "noop"))
		expect(t, "VGL-IMP-001", pid)
	})

	t.Run("SSH to a non-standard port", func(t *testing.T) {
		ln := agenttest.Listen(t, "127.0.0.1:0")
		agenttest.Serve(t, ln)
		b := run(helper(named(work, "curl"), "tcp-send", ln.Addr().String()))
		pid := run(helper(named(work, "ssh"), "tcp-send", ln.Addr().String()))
		a := expect(t, "VGL-C2-001", pid, b)
		if a.Get("alert.event.flow") == nil {
			t.Errorf("alert event is not the flow: %s", a)
		}
	})

	t.Run("network scanner", func(t *testing.T) {
		b := run(helper(named(work, "curl"), "noop"))
		pid := run(helper(named(work, "nmap"), "noop", "-sS", "127.0.0.1"))
		a := expect(t, "VGL-DISC-003", pid, b)
		if !strings.Contains(a.Str("alert.description"), "on the host") {
			t.Errorf("description %q", a.Str("alert.description"))
		}
	})

	t.Run("shell spawned by a server", func(t *testing.T) {
		sh := applet(t, tool(t, "sh"))
		b := spawned(t, named(work, "make"), "", sh, "-c", "true")
		pid := spawned(t, named(work, "nginx"), "", sh, "-c", "true")
		expect(t, "VGL-EXEC-006", pid, b)
	})

	t.Run("system user with an interactive shell", func(t *testing.T) {
		sh := applet(t, tool(t, "sh"))
		script := func(cmd *exec.Cmd) *exec.Cmd { cmd.Stdin = strings.NewReader("exit 0\n"); return cmd }
		b1 := run(as(1, exec.Command(sh, "-c", "true")))
		b2 := run(as(1000, script(exec.Command(sh))))
		pid := run(as(1, script(exec.Command(sh))))
		expect(t, "VGL-PRIV-009", pid, b1, b2)
	})

	t.Run("script run from /dev/shm or /tmp", func(t *testing.T) {
		sh := applet(t, tool(t, "sh"))
		dir, err := os.MkdirTemp("/tmp", "vigil-rules-")
		agenttest.FatalIf(t, err)
		t.Cleanup(func() { os.RemoveAll(dir) })
		body := []byte("#!" + sh + "\nexit 0\n")
		inTmp, inWork := filepath.Join(dir, "x.sh"), filepath.Join(work, "x.sh")
		agenttest.FatalIf(t, os.WriteFile(inTmp, body, 0o755))
		agenttest.FatalIf(t, os.WriteFile(inWork, body, 0o755))
		// Build outputs and what build tools run are not reported.
		build := fmt.Sprintf("/tmp/go-build-vigil-rules-%d", os.Getpid())
		agenttest.FatalIf(t, os.MkdirAll(build, 0o755))
		t.Cleanup(func() { os.RemoveAll(build) })
		b1 := run(exec.Command(inWork))
		b2 := run(helper(named(build, "payload"), "noop"))
		b3 := spawned(t, named(work, "make"), "", inTmp)
		pid := run(exec.Command(inTmp))
		a := expect(t, "VGL-EXEC-004", pid, b1, b2, b3)
		if !strings.Contains(a.Str("alert.description"), "script "+inTmp) {
			t.Errorf("description %q", a.Str("alert.description"))
		}
		rel := exec.Command(sh, "x.sh")
		rel.Dir = dir
		pid = run(rel)
		expect(t, "VGL-EXEC-004", pid)
	})
}
