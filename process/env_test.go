package process

import (
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/vigilsec/vigil/kprobes/abi"
)

// execEnvRecord builds an exec record with an environment as the kernel
// sends it: head is the environment's start, tail (possibly empty) its end.
func execEnvRecord(pid uint32, path string, argv []string, head, tail string) []byte {
	rec := execRecord(pid, 1, 1000, path, "/", argv...)
	r := (*abi.ExecEvent)(unsafe.Pointer(&rec[0]))
	r.EnvHead = uint16(len(head))
	r.EnvLen = uint16(len(head) + len(tail))
	rec = append(rec, head...)
	return append(rec, tail...)
}

func envCache(t *testing.T, names ...string) (*Decoder, *collect) {
	t.Helper()
	c, err := NewCache(Config{NodeName: "n", Clock: testClock, ExitGrace: time.Second, ExecEnv: names})
	if err != nil {
		t.Fatal(err)
	}
	out := &collect{}
	return NewDecoder(c, out), out
}

func envString(d *Decoder, out *collect, rec []byte) string {
	out.events = nil
	if err := d.Exec(rec); err != nil {
		return "error: " + err.Error()
	}
	var parts []string
	for _, v := range out.events[0].Process.Env {
		parts = append(parts, v.Key+"="+v.Value)
	}
	return strings.Join(parts, " ")
}

func TestExecEnvSelected(t *testing.T) {
	d, out := envCache(t, DefaultExecEnv...)
	argv := []string{"/bin/true"}
	for _, tc := range []struct {
		name, head, tail, want string
	}{
		{"whole", "HOME=/\x00LD_PRELOAD=/x.so\x00GLIBC_TUNABLES=glibc.malloc.check=1\x00", "", "LD_PRELOAD=/x.so GLIBC_TUNABLES=glibc.malloc.check=1"},
		{"none", "HOME=/\x00PATH=/bin\x00", "", ""},
		{"prefix is not the name", "LD_PRELOADX=/a\x00XLD_PRELOAD=/b\x00LD_PRELOAD\x00=LD_AUDIT\x00", "", ""},
		{"empty value", "LD_AUDIT=\x00", "", "LD_AUDIT="},
		{"value with =", "GLIBC_TUNABLES=a=b:c=d\x00", "", "GLIBC_TUNABLES=a=b:c=d"},
		// Read in two parts: the head's last string and the tail's first
		// are cut and never reported, even when they look whole.
		{"split", "LD_PRELOAD=/head\x00PAD=xx\x00LD_AUDIT=/cu", "D_PRELOAD=/cut\x00LD_LIBRARY_PATH=/tail\x00", "LD_PRELOAD=/head LD_LIBRARY_PATH=/tail"},
		{"split at a boundary", "LD_AUDIT=/a\x00", "LD_PRELOAD=/b\x00LD_PRELOAD=/c\x00", "LD_AUDIT=/a LD_PRELOAD=/c"},
		{"unterminated whole", "LD_PRELOAD=/x", "", "LD_PRELOAD=/x"},
	} {
		if got := envString(d, out, execEnvRecord(10, "/usr/bin/true", argv, tc.head, tc.tail)); got != tc.want {
			t.Errorf("%s: env %q, want %q", tc.name, got, tc.want)
		}
	}

	off, outOff := envCache(t)
	if got := envString(off, outOff, execEnvRecord(11, "/usr/bin/true", argv, "LD_PRELOAD=/x\x00", "")); got != "" {
		t.Errorf("no names asked for: env %q", got)
	}
}

// An environment without the variables costs no allocation beyond the
// process entry's.
func TestExecEnvNoAllocWhenUnmatched(t *testing.T) {
	names := DefaultExecEnv
	raw := []byte(strings.Repeat("SOME_VARIABLE=some value\x00", 100))
	dst := make([]envMatch, 0, 4)
	if n := testing.AllocsPerRun(100, func() { dst = matchEnv(dst[:0], raw, names, false, false) }); n != 0 || len(dst) != 0 {
		t.Errorf("matchEnv allocates %v times, matched %d", n, len(dst))
	}
}

func TestExecArgv0(t *testing.T) {
	d, out := envCache(t)
	for _, tc := range []struct {
		path  string
		argv0 string
		want  string
	}{
		{"/usr/bin/true", "true", ""},
		{"/usr/bin/true", "/usr/bin/true", ""},
		{"/usr/bin/true", "/bin/true", ""},
		{"/usr/sbin/nginx", "nginx: worker process", "nginx: worker process"},
		{"/bin/busybox", "wget", "wget"},
		{"/usr/bin/dash", "/bin/sh", "/bin/sh"},
	} {
		out.events = nil
		if err := d.Exec(execRecord(20, 1, 1000, tc.path, "/", tc.argv0, "arg")); err != nil {
			t.Fatal(err)
		}
		p := out.events[0].Process
		if p.Argv0 != tc.want {
			t.Errorf("%s run as %q: argv0 %q, want %q", tc.path, tc.argv0, p.Argv0, tc.want)
		}
		if p.Arguments != "arg" {
			t.Errorf("%s run as %q: arguments %q, want arg", tc.path, tc.argv0, p.Arguments)
		}
	}
}

func TestValidateEnvNames(t *testing.T) {
	for _, bad := range [][]string{{""}, {"A=B"}, {"LD_PRELOAD", "X\x00"}} {
		if _, err := NewCache(Config{ExecEnv: bad}); err == nil {
			t.Errorf("names %q accepted", bad)
		}
	}
}
