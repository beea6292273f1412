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
	for _, p := range []string{"default-file-access", "default-detections", "default-system-changes"} {
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
}
