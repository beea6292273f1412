package process_test

import (
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilsec/vigil/agent/agenttest"

	"github.com/vigilsec/vigil/agent"
	"github.com/vigilsec/vigil/internal/kerneltest"
)

// The exec of echo from a shell, as the issue describes it: binary, args,
// cwd, uid, the parent and the exit status. With tp_btf and with the raw
// tracepoint fallback.
func TestPrivExecEvent(t *testing.T) {
	for _, raw := range []bool{false, true} {
		t.Run(fmt.Sprintf("raw_tracepoints=%v", raw), func(t *testing.T) {
			h := agenttest.StartAgent(t, func(c *agent.Config) { c.RawTracepoints = raw })
			sh := exec.Command("/bin/sh", "-c", `cd /tmp && /bin/echo "hello world" x; true`)
			sh.Stdout = io.Discard
			agenttest.FatalIf(t, sh.Start())
			agenttest.FatalIf(t, sh.Wait())

			shell := h.WaitFor("exec of the shell", agenttest.ExecOf(sh.Process.Pid))
			echo := h.WaitFor("exec of echo", func(e agenttest.Event) bool {
				return e.Get("process_exec") != nil && e.Str("process_exec.process.binary") == agenttest.Resolved(t, "/bin/echo") &&
					int(e.Num("process_exec.parent.pid")) == sh.Process.Pid
			})
			p := "process_exec.process."
			if got, want := echo.Str(p+"arguments"), `"hello world" x`; got != want {
				t.Errorf("arguments = %q, want %q", got, want)
			}
			if got := echo.Str(p + "cwd"); got != "/tmp" {
				t.Errorf("cwd = %q, want /tmp", got)
			}
			if got := int(echo.Num(p + "uid")); got != os.Getuid() {
				t.Errorf("uid = %d, want %d", got, os.Getuid())
			}
			if got, want := echo.Str("process_exec.parent.binary"), agenttest.Resolved(t, "/bin/sh"); got != want {
				t.Errorf("parent binary = %q, want %q", got, want)
			}
			shellID := shell.Str("process_exec.process.exec_id")
			if shellID == "" || echo.Str(p+"parent_exec_id") != shellID || echo.Str("process_exec.parent.exec_id") != shellID {
				t.Errorf("parent_exec_id %q / parent.exec_id %q, want the shell's exec_id %q",
					echo.Str(p+"parent_exec_id"), echo.Str("process_exec.parent.exec_id"), shellID)
			}
			if id, err := base64.StdEncoding.DecodeString(echo.Str(p + "exec_id")); err != nil || !strings.HasPrefix(string(id), "test-node:") {
				t.Errorf("exec_id %q does not decode to test-node:...: %v", echo.Str(p+"exec_id"), err)
			}
			if echo.Str("node_name") != "test-node" || echo.Str("time") == "" {
				t.Errorf("node_name %q time %q", echo.Str("node_name"), echo.Str("time"))
			}
			echoPID := int(echo.Num(p + "pid"))
			exit := h.WaitFor("exit of echo", agenttest.ExitOf(echoPID))
			if exit.Num("process_exit.status") != 0 || exit.Str("process_exit.signal") != "" {
				t.Errorf("exit of echo: status %v signal %q", exit.Get("process_exit.status"), exit.Str("process_exit.signal"))
			}
			if exit.Str("process_exit.process.exec_id") != echo.Str(p+"exec_id") {
				t.Errorf("exit carries exec_id %q, exec had %q", exit.Str("process_exit.process.exec_id"), echo.Str(p+"exec_id"))
			}
		})
	}
}

func TestPrivExitSignal(t *testing.T) {
	h := agenttest.StartAgent(t, nil)
	cmd := agenttest.Command(t, "/bin/sleep", "30")
	agenttest.FatalIf(t, cmd.Start())
	h.WaitFor("exec of sleep", agenttest.ExecOf(cmd.Process.Pid))
	agenttest.FatalIf(t, cmd.Process.Kill())
	cmd.Wait()
	exit := h.WaitFor("exit of the killed process", agenttest.ExitOf(cmd.Process.Pid))
	if got := exit.Str("process_exit.signal"); got != "SIGKILL" {
		t.Errorf("signal = %q, want SIGKILL (event %s)", got, exit)
	}
}

// Arguments with unicode, empty arguments, a very long argument list.
func TestPrivExecArguments(t *testing.T) {
	h := agenttest.StartAgent(t, nil)
	run := func(args ...string) agenttest.Event {
		t.Helper()
		cmd := agenttest.Command(t, "/bin/echo", args...)
		cmd.Stdout = io.Discard
		agenttest.FatalIf(t, cmd.Run())
		return h.WaitFor("exec of echo", agenttest.ExecOf(cmd.Process.Pid))
	}
	if got, want := run("héllo wörld", "日本", "").Str("process_exec.process.arguments"), `"héllo wörld" 日本 ""`; got != want {
		t.Errorf("unicode and empty arguments: %q, want %q", got, want)
	}
	long := make([]string, 2000)
	for i := range long {
		long[i] = fmt.Sprintf("argument-%04d", i)
	}
	e := run(long...)
	args := e.Str("process_exec.process.arguments")
	if !strings.HasPrefix(args, "argument-0000 argument-0001") || len(args) > 4096 {
		t.Errorf("long argument list: %d bytes starting %q", len(args), args[:min(40, len(args))])
	}
	if !strings.Contains(e.Str("process_exec.process.flags"), "truncArgs") {
		t.Errorf("flags %q lack truncArgs", e.Str("process_exec.process.flags"))
	}
}

func TestPrivExecPaths(t *testing.T) {
	h := agenttest.StartAgent(t, nil)
	dir := t.TempDir()

	t.Run("long path", func(t *testing.T) {
		deep := dir
		for len(deep) < 300 {
			deep = filepath.Join(deep, "a-rather-long-directory-name")
		}
		agenttest.FatalIf(t, os.MkdirAll(deep, 0o755))
		bin := filepath.Join(deep, "true")
		agenttest.CopyExecutable(t, "/bin/true", bin)
		cmd := agenttest.CommandAs(bin, "true")
		agenttest.FatalIf(t, cmd.Run())
		e := h.WaitFor("exec of the deep binary", agenttest.ExecOf(cmd.Process.Pid))
		if got := e.Str("process_exec.process.binary"); got != agenttest.Resolved(t, bin) {
			t.Errorf("binary = %q (%d bytes), want %q", got, len(got), bin)
		}
	})

	t.Run("symlink", func(t *testing.T) {
		target := filepath.Join(dir, "real-true")
		agenttest.CopyExecutable(t, "/bin/true", target)
		link := filepath.Join(dir, "link-to-true")
		agenttest.FatalIf(t, os.Symlink(target, link))
		cmd := agenttest.CommandAs(link, "true")
		agenttest.FatalIf(t, cmd.Run())
		e := h.WaitFor("exec through the symlink", agenttest.ExecOf(cmd.Process.Pid))
		if got := e.Str("process_exec.process.binary"); got != agenttest.Resolved(t, target) {
			t.Errorf("binary = %q, want the resolved %q", got, target)
		}
	})

	t.Run("deleted binary", func(t *testing.T) {
		bin := filepath.Join(dir, "doomed-sleep")
		agenttest.CopyExecutable(t, "/bin/sleep", bin)
		f, err := os.Open(bin)
		agenttest.FatalIf(t, err)
		defer f.Close()
		agenttest.FatalIf(t, os.Remove(bin))
		// Executed through the open descriptor after the file is gone.
		cmd := agenttest.CommandAs("/proc/self/fd/3", "sleep", "0")
		cmd.ExtraFiles = []*os.File{f}
		agenttest.FatalIf(t, cmd.Run())
		e := h.WaitFor("exec of the deleted binary", agenttest.ExecOf(cmd.Process.Pid))
		if got := e.Str("process_exec.process.binary"); got != agenttest.Resolved(t, dir)+"/doomed-sleep" {
			t.Errorf("binary = %q, want %s/doomed-sleep", got, dir)
		}
		if e.Get("process_exec.process.binary_properties.deleted") != true {
			t.Errorf("binary_properties lack deleted: %v", e.Get("process_exec.process.binary_properties"))
		}
	})

	t.Run("exits at once", func(t *testing.T) {
		cmd := agenttest.Command(t, "/bin/true")
		agenttest.FatalIf(t, cmd.Run())
		e := h.WaitFor("exec of true", agenttest.ExecOf(cmd.Process.Pid))
		if e.Str("process_exec.process.binary") != agenttest.Resolved(t, "/bin/true") || e.Str("process_exec.process.cwd") == "" ||
			e.Str("process_exec.process.start_time") == "" || e.Str("process_exec.parent.exec_id") == "" {
			t.Errorf("incomplete event for a process that exits at once: %s", e)
		}
	})
}

// A process that started before the agent is known with its real binary,
// and is the parent of what it runs later.
func TestPrivProcessBeforeAgent(t *testing.T) {
	kerneltest.Require(t)
	// "; true": some shells exec their last command in place.
	sh := exec.Command("/bin/sh", "-c", "read x; /bin/echo after; true")
	in, err := sh.StdinPipe()
	agenttest.FatalIf(t, err)
	sh.Stdout = io.Discard
	agenttest.FatalIf(t, sh.Start())
	defer sh.Process.Kill()

	h := agenttest.StartAgent(t, nil)
	fmt.Fprintln(in, "go")
	in.Close()
	agenttest.FatalIf(t, sh.Wait())
	echo := h.WaitFor("exec of echo by the older shell", func(e agenttest.Event) bool {
		return e.Get("process_exec") != nil && int(e.Num("process_exec.parent.pid")) == sh.Process.Pid
	})
	if got, want := echo.Str("process_exec.parent.binary"), agenttest.Resolved(t, "/bin/sh"); got != want {
		t.Errorf("parent binary = %q, want %q", got, want)
	}
	if !strings.Contains(echo.Str("process_exec.parent.flags"), "procFS") {
		t.Errorf("parent flags %q: want procFS (read from /proc at start-up)", echo.Str("process_exec.parent.flags"))
	}
	if echo.Str("process_exec.parent.arguments") != "-c \"read x; /bin/echo after; true\"" {
		t.Errorf("parent arguments %q", echo.Str("process_exec.parent.arguments"))
	}
}

// exec ids stay unique over many short processes, and none is lost.
func TestPrivExecIDsUnique(t *testing.T) {
	h := agenttest.StartAgent(t, nil)
	n := 10000
	if k, ok := kerneltest.Known(); ok && strings.HasPrefix(k.Name, "Debian") {
		n = 1000 // emulated CPU in the VM tier
	}
	bin := agenttest.Resolved(t, "/bin/true")
	pids := make(map[int]bool, n)
	for i := 0; i < n; i++ {
		cmd := agenttest.Command(t, "/bin/true")
		agenttest.FatalIf(t, cmd.Run())
		pids[cmd.Process.Pid] = true
	}
	last := 0
	for p := range pids {
		last = max(last, p)
	}
	deadline := time.Now().Add(agenttest.Timeout())
	var execs []agenttest.Event
	for time.Now().Before(deadline) {
		execs = h.All(func(e agenttest.Event) bool {
			return e.Get("process_exec") != nil && e.Str("process_exec.process.binary") == bin && pids[int(e.Num("process_exec.process.pid"))]
		})
		if len(execs) >= n {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(execs) != n {
		t.Fatalf("%d exec events for %d processes", len(execs), n)
	}
	seen := map[string]bool{}
	for _, e := range execs {
		id := e.Str("process_exec.process.exec_id")
		if seen[id] {
			t.Fatalf("exec_id %q repeated", id)
		}
		seen[id] = true
	}
	if lost := h.All(func(e agenttest.Event) bool { return e.Get("lost_events") != nil }); len(lost) > 0 {
		t.Errorf("lost events reported: %v", lost)
	}
}

// Exec filters drop events in the kernel: by binary and by cgroup.
func TestPrivExecFilters(t *testing.T) {
	kerneltest.Require(t)
	root := agenttest.Cgroup2Root(t)
	cg := filepath.Join(root, fmt.Sprintf("vigil-test-%d", os.Getpid()))
	agenttest.FatalIf(t, os.Mkdir(cg, 0o755))
	t.Cleanup(func() { os.Remove(cg) })
	// A binary of its own, so that filtering it filters nothing else (on
	// the VMs every tool is the same busybox binary).
	trueBin := filepath.Join(t.TempDir(), "filtered-true")
	agenttest.CopyExecutable(t, "/bin/true", trueBin)

	h := agenttest.StartAgent(t, func(c *agent.Config) {
		c.ExecFilter.Binaries = []string{trueBin}
		c.ExecFilter.CgroupPaths = []string{"/" + filepath.Base(cg)}
	})
	filtered := agenttest.CommandAs(trueBin, "true")
	agenttest.FatalIf(t, filtered.Run())

	// A process placed in the filtered cgroup before it execs.
	inCg := agenttest.Command(t, "/bin/sleep", "0")
	inCg.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: agenttest.OpenDir(t, cg)}
	agenttest.FatalIf(t, inCg.Run())

	marker := agenttest.Command(t, "/bin/sleep", "0")
	agenttest.FatalIf(t, marker.Run())
	h.WaitFor("exec of an unfiltered process", agenttest.ExecOf(marker.Process.Pid))
	for _, p := range []*exec.Cmd{filtered, inCg} {
		if got := h.All(func(e agenttest.Event) bool {
			return agenttest.ExecOf(p.Process.Pid)(e) || agenttest.ExitOf(p.Process.Pid)(e)
		}); len(got) > 0 {
			t.Errorf("events for filtered process %s: %v", p.Path, got)
		}
	}
}

// The environment variables asked for (the default --exec-env) and argv[0]
// when it is not the binary's name, as a user sees them on exec events.
func TestPrivExecEnvironment(t *testing.T) {
	h := agenttest.StartAgent(t, nil)
	run := func(argv0 string, env []string) agenttest.Event {
		t.Helper()
		cmd := agenttest.Command(t, "/bin/true")
		if argv0 != "" {
			cmd.Args[0] = argv0
		}
		cmd.Env = env
		cmd.Stderr = io.Discard // the loader's complaint about the missing preload
		agenttest.FatalIf(t, cmd.Run())
		return h.WaitFor("exec of true", agenttest.ExecOf(cmd.Process.Pid))
	}
	envOf := func(e agenttest.Event) []string {
		list, _ := e.Get("process_exec.process.environment_variables").([]any)
		var out []string
		for _, v := range list {
			m, _ := v.(map[string]any)
			out = append(out, fmt.Sprintf("%v=%v", m["Key"], m["Value"]))
		}
		return out
	}
	// filler is n bytes of variables no one asked for.
	filler := func(prefix string, n int) []string {
		var out []string
		for i := 0; n > 0; i++ {
			v := fmt.Sprintf("%s_%05d=%s", prefix, i, strings.Repeat("x", 90))
			out = append(out, v)
			n -= len(v) + 1
		}
		return out
	}
	const tunables = "glibc.malloc.mmap_threshold=4096"

	t.Run("set", func(t *testing.T) {
		e := run("", []string{"HOME=/", "LD_PRELOAD=/x", "PATH=/bin", "GLIBC_TUNABLES=" + tunables, "LD_PRELOADX=no"})
		if got, want := strings.Join(envOf(e), " "), "LD_PRELOAD=/x GLIBC_TUNABLES="+tunables; got != want {
			t.Errorf("environment_variables = %q, want %q", got, want)
		}
		if strings.Contains(e.Str("process_exec.process.flags"), "Env") {
			t.Errorf("flags %q for a small environment", e.Str("process_exec.process.flags"))
		}
	})
	t.Run("unset", func(t *testing.T) {
		e := run("", []string{"HOME=/", "PATH=/bin"})
		if v := e.Get("process_exec.process.environment_variables"); v != nil {
			t.Errorf("environment_variables = %v for a process without them", v)
		}
		bin := e.Str("process_exec.process.binary")
		if v := e.Get("process_exec.process.argv0"); filepath.Base(bin) == "true" && v != nil {
			t.Errorf("argv0 = %v, though argv[0] is the binary's name (%s)", v, bin)
		}
	})
	t.Run("exec -a", func(t *testing.T) {
		e := run("httpd", nil)
		if got := e.Str("process_exec.process.argv0"); got != "httpd" {
			t.Errorf("argv0 = %q, want httpd (binary %s)", got, e.Str("process_exec.process.binary"))
		}
	})
	t.Run("oversize", func(t *testing.T) {
		// 100 KB of variables before the preload: env(1) and setenv(3) append
		// a new variable, so it is the last; the kernel reads the
		// environment's end.
		e := run("", append(filler("PAD", 100<<10), "LD_PRELOAD=/x"))
		if got := strings.Join(envOf(e), " "); got != "LD_PRELOAD=/x" {
			t.Errorf("environment_variables = %q after 100 KB of variables, want LD_PRELOAD=/x", got)
		}
		if !strings.Contains(e.Str("process_exec.process.flags"), "truncEnv") {
			t.Errorf("flags %q lack truncEnv", e.Str("process_exec.process.flags"))
		}
		// In the unread middle: not reported, and the event says the
		// environment was not read whole.
		env := append(filler("A", 50<<10), "LD_PRELOAD=/x")
		e = run("", append(env, filler("B", 50<<10)...))
		if got := envOf(e); len(got) != 0 {
			t.Errorf("environment_variables = %q for a variable the kernel did not read", got)
		}
		if !strings.Contains(e.Str("process_exec.process.flags"), "truncEnv") {
			t.Errorf("flags %q lack truncEnv", e.Str("process_exec.process.flags"))
		}
	})
}
