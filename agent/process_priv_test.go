package agent_test

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

	"github.com/vigilsec/vigil/agent"
	"github.com/vigilsec/vigil/identity/cgroup"
	"github.com/vigilsec/vigil/internal/kerneltest"
)

// The exec of echo from a shell, as the issue describes it: binary, args,
// cwd, uid, the parent and the exit status. With tp_btf and with the raw
// tracepoint fallback.
func TestPrivExecEvent(t *testing.T) {
	for _, raw := range []bool{false, true} {
		t.Run(fmt.Sprintf("raw_tracepoints=%v", raw), func(t *testing.T) {
			h := startAgent(t, func(c *agent.Config) { c.RawTracepoints = raw })
			sh := exec.Command("/bin/sh", "-c", `cd /tmp && /bin/echo "hello world" x; true`)
			sh.Stdout = io.Discard
			fatalIf(t, sh.Start())
			fatalIf(t, sh.Wait())

			shell := h.waitFor("exec of the shell", execOf(sh.Process.Pid))
			echo := h.waitFor("exec of echo", func(e ev) bool {
				return e.get("process_exec") != nil && e.str("process_exec.process.binary") == resolved(t, "/bin/echo") &&
					int(e.num("process_exec.parent.pid")) == sh.Process.Pid
			})
			p := "process_exec.process."
			if got, want := echo.str(p+"arguments"), `"hello world" x`; got != want {
				t.Errorf("arguments = %q, want %q", got, want)
			}
			if got := echo.str(p + "cwd"); got != "/tmp" {
				t.Errorf("cwd = %q, want /tmp", got)
			}
			if got := int(echo.num(p + "uid")); got != os.Getuid() {
				t.Errorf("uid = %d, want %d", got, os.Getuid())
			}
			if got, want := echo.str("process_exec.parent.binary"), resolved(t, "/bin/sh"); got != want {
				t.Errorf("parent binary = %q, want %q", got, want)
			}
			shellID := shell.str("process_exec.process.exec_id")
			if shellID == "" || echo.str(p+"parent_exec_id") != shellID || echo.str("process_exec.parent.exec_id") != shellID {
				t.Errorf("parent_exec_id %q / parent.exec_id %q, want the shell's exec_id %q",
					echo.str(p+"parent_exec_id"), echo.str("process_exec.parent.exec_id"), shellID)
			}
			if id, err := base64.StdEncoding.DecodeString(echo.str(p + "exec_id")); err != nil || !strings.HasPrefix(string(id), "test-node:") {
				t.Errorf("exec_id %q does not decode to test-node:...: %v", echo.str(p+"exec_id"), err)
			}
			if echo.str("node_name") != "test-node" || echo.str("time") == "" {
				t.Errorf("node_name %q time %q", echo.str("node_name"), echo.str("time"))
			}
			echoPID := int(echo.num(p + "pid"))
			exit := h.waitFor("exit of echo", exitOf(echoPID))
			if exit.num("process_exit.status") != 0 || exit.str("process_exit.signal") != "" {
				t.Errorf("exit of echo: status %v signal %q", exit.get("process_exit.status"), exit.str("process_exit.signal"))
			}
			if exit.str("process_exit.process.exec_id") != echo.str(p+"exec_id") {
				t.Errorf("exit carries exec_id %q, exec had %q", exit.str("process_exit.process.exec_id"), echo.str(p+"exec_id"))
			}
		})
	}
}

func TestPrivExitSignal(t *testing.T) {
	h := startAgent(t, nil)
	cmd := command(t, "/bin/sleep", "30")
	fatalIf(t, cmd.Start())
	h.waitFor("exec of sleep", execOf(cmd.Process.Pid))
	fatalIf(t, cmd.Process.Kill())
	cmd.Wait()
	exit := h.waitFor("exit of the killed process", exitOf(cmd.Process.Pid))
	if got := exit.str("process_exit.signal"); got != "SIGKILL" {
		t.Errorf("signal = %q, want SIGKILL (event %s)", got, exit)
	}
}

// Arguments with unicode, empty arguments, a very long argument list.
func TestPrivExecArguments(t *testing.T) {
	h := startAgent(t, nil)
	run := func(args ...string) ev {
		t.Helper()
		cmd := command(t, "/bin/echo", args...)
		cmd.Stdout = io.Discard
		fatalIf(t, cmd.Run())
		return h.waitFor("exec of echo", execOf(cmd.Process.Pid))
	}
	if got, want := run("héllo wörld", "日本", "").str("process_exec.process.arguments"), `"héllo wörld" 日本 ""`; got != want {
		t.Errorf("unicode and empty arguments: %q, want %q", got, want)
	}
	long := make([]string, 2000)
	for i := range long {
		long[i] = fmt.Sprintf("argument-%04d", i)
	}
	e := run(long...)
	args := e.str("process_exec.process.arguments")
	if !strings.HasPrefix(args, "argument-0000 argument-0001") || len(args) > 4096 {
		t.Errorf("long argument list: %d bytes starting %q", len(args), args[:min(40, len(args))])
	}
	if !strings.Contains(e.str("process_exec.process.flags"), "truncArgs") {
		t.Errorf("flags %q lack truncArgs", e.str("process_exec.process.flags"))
	}
}

// command runs the applet or binary name (such as /bin/echo) through its
// resolved path, with argv[0] its base name: on the VMs every tool is
// busybox, which picks the applet from argv[0].
func command(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(resolved(t, name), args...)
	cmd.Args[0] = filepath.Base(name)
	return cmd
}

// commandAs runs the executable at path with argv[0] set to applet.
func commandAs(path, applet string, args ...string) *exec.Cmd {
	cmd := exec.Command(path, args...)
	cmd.Args[0] = applet
	return cmd
}

// copyExecutable copies a real executable (not a symlink) to dst.
func copyExecutable(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(resolved(t, src))
	fatalIf(t, err)
	fatalIf(t, os.WriteFile(dst, b, 0o755))
}

func TestPrivExecPaths(t *testing.T) {
	h := startAgent(t, nil)
	dir := t.TempDir()

	t.Run("long path", func(t *testing.T) {
		deep := dir
		for len(deep) < 300 {
			deep = filepath.Join(deep, "a-rather-long-directory-name")
		}
		fatalIf(t, os.MkdirAll(deep, 0o755))
		bin := filepath.Join(deep, "true")
		copyExecutable(t, "/bin/true", bin)
		cmd := commandAs(bin, "true")
		fatalIf(t, cmd.Run())
		e := h.waitFor("exec of the deep binary", execOf(cmd.Process.Pid))
		if got := e.str("process_exec.process.binary"); got != resolved(t, bin) {
			t.Errorf("binary = %q (%d bytes), want %q", got, len(got), bin)
		}
	})

	t.Run("symlink", func(t *testing.T) {
		target := filepath.Join(dir, "real-true")
		copyExecutable(t, "/bin/true", target)
		link := filepath.Join(dir, "link-to-true")
		fatalIf(t, os.Symlink(target, link))
		cmd := commandAs(link, "true")
		fatalIf(t, cmd.Run())
		e := h.waitFor("exec through the symlink", execOf(cmd.Process.Pid))
		if got := e.str("process_exec.process.binary"); got != resolved(t, target) {
			t.Errorf("binary = %q, want the resolved %q", got, target)
		}
	})

	t.Run("deleted binary", func(t *testing.T) {
		bin := filepath.Join(dir, "doomed-sleep")
		copyExecutable(t, "/bin/sleep", bin)
		f, err := os.Open(bin)
		fatalIf(t, err)
		defer f.Close()
		fatalIf(t, os.Remove(bin))
		// Executed through the open descriptor after the file is gone.
		cmd := commandAs("/proc/self/fd/3", "sleep", "0")
		cmd.ExtraFiles = []*os.File{f}
		fatalIf(t, cmd.Run())
		e := h.waitFor("exec of the deleted binary", execOf(cmd.Process.Pid))
		if got := e.str("process_exec.process.binary"); got != resolved(t, dir)+"/doomed-sleep" {
			t.Errorf("binary = %q, want %s/doomed-sleep", got, dir)
		}
		if e.get("process_exec.process.binary_properties.deleted") != true {
			t.Errorf("binary_properties lack deleted: %v", e.get("process_exec.process.binary_properties"))
		}
	})

	t.Run("exits at once", func(t *testing.T) {
		cmd := command(t, "/bin/true")
		fatalIf(t, cmd.Run())
		e := h.waitFor("exec of true", execOf(cmd.Process.Pid))
		if e.str("process_exec.process.binary") != resolved(t, "/bin/true") || e.str("process_exec.process.cwd") == "" ||
			e.str("process_exec.process.start_time") == "" || e.str("process_exec.parent.exec_id") == "" {
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
	fatalIf(t, err)
	sh.Stdout = io.Discard
	fatalIf(t, sh.Start())
	defer sh.Process.Kill()

	h := startAgent(t, nil)
	fmt.Fprintln(in, "go")
	in.Close()
	fatalIf(t, sh.Wait())
	echo := h.waitFor("exec of echo by the older shell", func(e ev) bool {
		return e.get("process_exec") != nil && int(e.num("process_exec.parent.pid")) == sh.Process.Pid
	})
	if got, want := echo.str("process_exec.parent.binary"), resolved(t, "/bin/sh"); got != want {
		t.Errorf("parent binary = %q, want %q", got, want)
	}
	if !strings.Contains(echo.str("process_exec.parent.flags"), "procFS") {
		t.Errorf("parent flags %q: want procFS (read from /proc at start-up)", echo.str("process_exec.parent.flags"))
	}
	if echo.str("process_exec.parent.arguments") != "-c \"read x; /bin/echo after; true\"" {
		t.Errorf("parent arguments %q", echo.str("process_exec.parent.arguments"))
	}
}

// exec ids stay unique over many short processes, and none is lost.
func TestPrivExecIDsUnique(t *testing.T) {
	h := startAgent(t, nil)
	n := 10000
	if k, ok := kerneltest.Known(); ok && strings.HasPrefix(k.Name, "Debian") {
		n = 1000 // emulated CPU in the VM tier
	}
	bin := resolved(t, "/bin/true")
	pids := make(map[int]bool, n)
	for i := 0; i < n; i++ {
		cmd := command(t, "/bin/true")
		fatalIf(t, cmd.Run())
		pids[cmd.Process.Pid] = true
	}
	last := 0
	for p := range pids {
		last = max(last, p)
	}
	deadline := time.Now().Add(timeout())
	var execs []ev
	for time.Now().Before(deadline) {
		execs = h.all(func(e ev) bool {
			return e.get("process_exec") != nil && e.str("process_exec.process.binary") == bin && pids[int(e.num("process_exec.process.pid"))]
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
		id := e.str("process_exec.process.exec_id")
		if seen[id] {
			t.Fatalf("exec_id %q repeated", id)
		}
		seen[id] = true
	}
	if lost := h.all(func(e ev) bool { return e.get("lost_events") != nil }); len(lost) > 0 {
		t.Errorf("lost events reported: %v", lost)
	}
}

// Exec filters drop events in the kernel: by binary and by cgroup.
func TestPrivExecFilters(t *testing.T) {
	kerneltest.Require(t)
	root := cgroup2Root(t)
	cg := filepath.Join(root, fmt.Sprintf("vigil-test-%d", os.Getpid()))
	fatalIf(t, os.Mkdir(cg, 0o755))
	t.Cleanup(func() { os.Remove(cg) })
	// A binary of its own, so that filtering it filters nothing else (on
	// the VMs every tool is the same busybox binary).
	trueBin := filepath.Join(t.TempDir(), "filtered-true")
	copyExecutable(t, "/bin/true", trueBin)

	h := startAgent(t, func(c *agent.Config) {
		c.ExecFilter.Binaries = []string{trueBin}
		c.ExecFilter.CgroupPaths = []string{"/" + filepath.Base(cg)}
	})
	filtered := commandAs(trueBin, "true")
	fatalIf(t, filtered.Run())

	// A process placed in the filtered cgroup before it execs.
	inCg := command(t, "/bin/sleep", "0")
	inCg.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: openDir(t, cg)}
	fatalIf(t, inCg.Run())

	marker := command(t, "/bin/sleep", "0")
	fatalIf(t, marker.Run())
	h.waitFor("exec of an unfiltered process", execOf(marker.Process.Pid))
	for _, p := range []*exec.Cmd{filtered, inCg} {
		if got := h.all(func(e ev) bool { return execOf(p.Process.Pid)(e) || exitOf(p.Process.Pid)(e) }); len(got) > 0 {
			t.Errorf("events for filtered process %s: %v", p.Path, got)
		}
	}
}

func openDir(t *testing.T, dir string) int {
	t.Helper()
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	fatalIf(t, err)
	t.Cleanup(func() { syscall.Close(fd) })
	return fd
}

// cgroup2Root finds the cgroup v2 mount.
func cgroup2Root(t *testing.T) string {
	t.Helper()
	mp, err := cgroup.Mountpoint()
	if err != nil {
		kerneltest.Skip(t, "%v", err)
	}
	return mp
}
