package process

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/kprobes/abi"
)

var testClock = Clock{WallOffset: 1_700_000_000_000_000_000, BootTime: 1_699_999_000_000_000_000}

func newTestCache(t testing.TB, max int) *Cache {
	t.Helper()
	c, err := NewCache(Config{NodeName: "node-a", MaxEntries: max, Clock: testClock, ExitGrace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// execRecord builds a raw exec record as the kernel writes it.
func execRecord(pid, ppid uint32, ktime uint64, path, cwd string, argv ...string) []byte {
	args := strings.Join(argv, "\x00") + "\x00"
	var r abi.ExecEvent
	r.Hdr.Op = abi.OpExec
	r.Hdr.Pid, r.Hdr.Tid, r.Hdr.Ktime = pid, pid, ktime
	r.Ppid = ppid
	r.Creds.Uid, r.Creds.Euid, r.Auid = 1000, 1000, 1000
	r.PathLen, r.CwdLen, r.ArgsLen = uint16(len(path)), uint16(len(cwd)), uint16(len(args))
	r.Creds.CapEffective = 1 << 21
	b := unsafe.Slice((*byte)(unsafe.Pointer(&r)), unsafe.Sizeof(r))
	out := append([]byte(nil), b...)
	out = append(out, path...)
	out = append(out, cwd...)
	out = append(out, args...)
	r.Hdr.Size = uint16(len(out))
	return out
}

func exitRecord(pid uint32, ktime uint64, code uint32) []byte {
	var r abi.ExitEvent
	r.Hdr.Op, r.Hdr.Pid, r.Hdr.Tid, r.Hdr.Ktime = abi.OpExit, pid, pid, ktime
	r.ExitCode = code
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&r)), unsafe.Sizeof(r))...)
}

func forkRecord(pid, ppid uint32, ktime uint64) []byte {
	var r abi.ForkEvent
	r.Hdr.Op, r.Hdr.Pid, r.Hdr.Tid, r.Hdr.Ktime = abi.OpFork, pid, pid, ktime
	r.Ppid, r.StartKtime = ppid, ktime
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&r)), unsafe.Sizeof(r))...)
}

type collect struct{ events []*event.Event }

func (c *collect) Export(ev *event.Event) { c.events = append(c.events, ev.Clone()) }

func TestExecForkExitTree(t *testing.T) {
	c := newTestCache(t, 0)
	var out collect
	d := NewDecoder(c, &out)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(d.Exec(execRecord(100, 1, 1000, "/usr/bin/dash", "/home/u", "/bin/sh", "-c", "echo hi")))
	must(d.Fork(forkRecord(101, 100, 2000)))
	must(d.Exec(execRecord(101, 100, 3000, "/usr/bin/echo", "/tmp", "/bin/echo", "hello world", "x", "")))
	must(d.Exit(exitRecord(101, 4000, 0)))
	must(d.Exit(exitRecord(100, 5000, 9)))

	if len(out.events) != 4 {
		t.Fatalf("got %d events, want 4 (forks produce none)", len(out.events))
	}
	sh, echo := out.events[0], out.events[1]
	if sh.Type != event.TypeProcessExec || echo.Type != event.TypeProcessExec {
		t.Fatalf("types %v %v", sh.Type, echo.Type)
	}
	if echo.Process.Binary != "/usr/bin/echo" || echo.Process.CWD != "/tmp" {
		t.Errorf("echo binary %q cwd %q", echo.Process.Binary, echo.Process.CWD)
	}
	if got, want := echo.Process.Arguments, `"hello world" x ""`; got != want {
		t.Errorf("arguments = %q, want %q", got, want)
	}
	if echo.Process.ParentExecID != sh.Process.ExecID || echo.Parent == nil || echo.Parent.Binary != "/usr/bin/dash" {
		t.Errorf("echo's parent: id %q (shell %q), parent %+v", echo.Process.ParentExecID, sh.Process.ExecID, echo.Parent)
	}
	if sh.Process.Flags&event.FlagNoParent == 0 {
		t.Errorf("shell's parent pid 1 was never seen: want the nop flag, got %q", sh.Process.Flags)
	}
	id, _ := base64.StdEncoding.DecodeString(echo.Process.ExecID)
	if want := fmt.Sprintf("node-a:%d:101", uint64(testClock.BootTime)+3000); string(id) != want {
		t.Errorf("exec id decodes to %q, want %q", id, want)
	}
	if want := time.Unix(0, testClock.WallOffset+3000).UTC(); !echo.Process.StartTime.Equal(want) || !echo.Time.Equal(want) {
		t.Errorf("start time %v / event time %v, want %v", echo.Process.StartTime, echo.Time, want)
	}
	exit := out.events[2]
	if exit.Type != event.TypeProcessExit || exit.Process.ExecID != echo.Process.ExecID || exit.Exit.Status != 0 || exit.Exit.Signal != 0 {
		t.Errorf("echo exit: %+v %+v", exit.Process, exit.Exit)
	}
	if exit.Parent == nil || exit.Parent.ExecID != sh.Process.ExecID {
		t.Errorf("exit event lost the parent")
	}
	if k := out.events[3]; k.Exit.Signal != 9 || k.Exit.Status != 0 {
		t.Errorf("killed shell: %+v", k.Exit)
	}
}

func TestForkInheritsParent(t *testing.T) {
	c := newTestCache(t, 0)
	d := NewDecoder(c, &collect{})
	d.Exec(execRecord(10, 1, 100, "/usr/sbin/nginx", "/", "nginx", "-g", "daemon off;"))
	d.Fork(forkRecord(11, 10, 200))
	proc, parent := c.Get(11)
	if proc == nil || parent == nil {
		t.Fatal("forked child not resolvable")
	}
	if proc.Binary != "/usr/sbin/nginx" || proc.Arguments != `-g "daemon off;"` || proc.Flags&event.FlagClone == 0 {
		t.Errorf("child %+v", proc)
	}
	if proc.ExecID == parent.ExecID || proc.ParentExecID != parent.ExecID {
		t.Errorf("child exec id %q parent %q / %q", proc.ExecID, proc.ParentExecID, parent.ExecID)
	}
}

func TestExecIDUnique(t *testing.T) {
	c := newTestCache(t, 0)
	d := NewDecoder(c, &collect{})
	seen := map[string]bool{}
	for i := 0; i < 10000; i++ {
		pid := uint32(1000 + i%300) // pids are reused
		d.Fork(forkRecord(pid, 1, uint64(i*10)))
		d.Exec(execRecord(pid, 1, uint64(i*10+5), "/bin/true", "/", "true"))
		p, _ := c.Get(pid)
		if seen[p.ExecID] {
			t.Fatalf("exec id %q repeated at iteration %d", p.ExecID, i)
		}
		seen[p.ExecID] = true
		d.Exit(exitRecord(pid, uint64(i*10+7), 0))
	}
}

func TestCacheBounded(t *testing.T) {
	const max = 256
	c := newTestCache(t, max)
	d := NewDecoder(c, &collect{})
	for i := 0; i < 100000; i++ {
		pid := uint32(2 + i)
		d.Exec(execRecord(pid, 1, uint64(i), "/bin/true", "/", "true"))
		if i%2 == 0 {
			d.Exit(exitRecord(pid, uint64(i)+1, 0))
		}
		if s := c.Stats(); s.Size > max {
			t.Fatalf("cache holds %d entries, bound is %d", s.Size, max)
		}
		if c.exited.size > 2*max+64 {
			t.Fatalf("exited queue grew to %d", c.exited.size)
		}
	}
	if s := c.Stats(); s.Evictions == 0 {
		t.Error("no eviction counted")
	}
}

func TestExitedStaysResolvableForGrace(t *testing.T) {
	c := newTestCache(t, 0)
	d := NewDecoder(c, &collect{})
	d.Exec(execRecord(50, 1, 10, "/bin/true", "/", "true"))
	d.Exit(exitRecord(50, 20, 0))
	if p, _ := c.Get(50); p == nil {
		t.Fatal("exited process not resolvable right after exit")
	}
	// A later insert, past the grace period, expires it.
	d.Exec(execRecord(51, 1, uint64(20+2*time.Second), "/bin/true", "/", "true"))
	if p, _ := c.Get(50); p != nil {
		t.Fatal("exited process still cached after the grace period")
	}
}

func TestShortRecords(t *testing.T) {
	d := NewDecoder(newTestCache(t, 0), &collect{})
	for _, f := range []func([]byte) error{d.Exec, d.Fork, d.Exit} {
		if err := f(make([]byte, 8)); err == nil {
			t.Error("short record accepted")
		}
	}
	if d.Errors != 3 {
		t.Errorf("errors counted %d, want 3", d.Errors)
	}
}

// FuzzDecoder feeds the decoder records built from arbitrary fields and
// checks that what comes out is what went in (the pid, parent, binary, cwd,
// times and exit status), and that arbitrary bytes are refused or decoded
// without a panic.
func FuzzDecoder(f *testing.F) {
	f.Add(uint32(10), uint32(1), uint64(5), "/bin/sh", "/", "x", uint32(0x100), []byte(nil))
	f.Add(uint32(1), uint32(0), uint64(0), "", "", "", uint32(9), []byte{1, 2, 3})
	f.Add(uint32(7), uint32(7), uint64(1<<60), "/a b/\xff", "rel", "a\x00b", uint32(0x8b), execRecord(3, 1, 2, "/x", "/", "x"))
	f.Fuzz(func(t *testing.T, pid, ppid uint32, ktime uint64, path, cwd, arg string, code uint32, raw []byte) {
		path, cwd = clampField(path), clampField(cwd)
		c := newTestCache(t, 64)
		var out collect
		d := NewDecoder(c, &out)
		if pid == 0 {
			pid = 1
		}
		if err := d.Exec(execRecord(ppid, 0, ktime, "/parent", "/")); err != nil {
			t.Fatal(err)
		}
		if err := d.Exec(execRecord(pid, ppid, ktime+1, path, cwd, "argv0", arg)); err != nil {
			t.Fatal(err)
		}
		if err := d.Exit(exitRecord(pid, ktime+2, code)); err != nil {
			t.Fatal(err)
		}
		if len(out.events) != 3 {
			t.Fatalf("%d events, want exec, exec, exit", len(out.events))
		}
		exec, exit := out.events[1], out.events[2]
		p := exec.Process
		if p.PID != pid || p.Binary != path || p.CWD != cwd || p.Ktime != ktime+1 {
			t.Errorf("exec decoded as pid %d binary %q cwd %q ktime %d; want %d %q %q %d", p.PID, p.Binary, p.CWD, p.Ktime, pid, path, cwd, ktime+1)
		}
		if p.ExecID == "" {
			t.Errorf("empty exec id")
		}
		if pid != ppid && (exec.Parent == nil || exec.Parent.PID != ppid || p.ParentExecID != exec.Parent.ExecID) {
			t.Errorf("parent of %d not linked to %d: %+v", pid, ppid, exec.Parent)
		}
		if exit.Process.ExecID != p.ExecID {
			t.Errorf("exit of exec id %s, want %s", exit.Process.ExecID, p.ExecID)
		}
		if *exit.Exit != DecodeExitCode(code) {
			t.Errorf("exit status %+v, want %+v", *exit.Exit, DecodeExitCode(code))
		}
		// Arbitrary bytes: refused when short, never a panic.
		for _, h := range d.Routes() {
			if err := h.Decode(raw); err == nil && len(raw) < 24 {
				t.Errorf("a %d-byte record was accepted by opcode %d", len(raw), h.Op)
			}
		}
	})
}

// clampField keeps a fuzzed string within what a record's 16-bit length
// field and the decoder's NUL-free paths can carry.
func clampField(s string) string {
	s = strings.ReplaceAll(s, "\x00", "")
	if len(s) > 4096 {
		s = s[:4096]
	}
	return s
}
