package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseMarker(t *testing.T) {
	const token = "0123abcd"
	tests := []struct {
		line     string
		wantText string
		wantCode int
		wantOK   bool
	}{
		{"vigil-vmtest: 0123abcd exit=0\n", "", 0, true},
		{"vigil-vmtest: 0123abcd exit=1\r\n", "", 1, true},
		{"PASSvigil-vmtest: 0123abcd exit=2\n", "PASS", 2, true},
		{"vigil-vmtest: 0123abcd exit=255", "", 255, true},
		{"vigil-vmtest: ffffffff exit=0\n", "vigil-vmtest: ffffffff exit=0\n", 0, false},
		{"vigil-vmtest: 0123abcd exit=\n", "vigil-vmtest: 0123abcd exit=\n", 0, false},
		{"vigil-vmtest: 0123abcd exit=256\n", "vigil-vmtest: 0123abcd exit=256\n", 0, false},
		{"vigil-vmtest: 0123abcd exit=1 trailing\n", "vigil-vmtest: 0123abcd exit=1 trailing\n", 0, false},
		{"--- PASS: TestX (0.00s)\n", "--- PASS: TestX (0.00s)\n", 0, false},
	}
	for _, tt := range tests {
		text, code, ok := parseMarker(tt.line, token)
		if text != tt.wantText || code != tt.wantCode || ok != tt.wantOK {
			t.Errorf("parseMarker(%q) = %q, %d, %v; want %q, %d, %v", tt.line, text, code, ok, tt.wantText, tt.wantCode, tt.wantOK)
		}
	}
}

func FuzzParseMarker(f *testing.F) {
	f.Add("vigil-vmtest: tok exit=0\n")
	f.Add("PASSvigil-vmtest: tok exit=17\r\n")
	f.Add("ok\n")
	f.Fuzz(func(t *testing.T, line string) {
		text, code, ok := parseMarker(line, "tok")
		if !ok {
			if text != line || code != 0 {
				t.Errorf("no marker, but text %q code %d", text, code)
			}
			return
		}
		if code < 0 || code > 255 || !strings.HasPrefix(line, text) {
			t.Errorf("parseMarker(%q) = %q, %d", line, text, code)
		}
	})
}

// fakeQemu writes a shell script standing in for qemu: it records its
// arguments in <dir>/args and runs body, which writes the kernel console to
// fd 3 and the test's output to fd 4 as qemu's two serial ports would.
func fakeQemu(t *testing.T, body string) (qemu, argsFile string) {
	t.Helper()
	dir := t.TempDir()
	argsFile = filepath.Join(dir, "args")
	qemu = filepath.Join(dir, "qemu")
	script := "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + shellQuote(argsFile) + "\n" + body + "\n"
	if err := os.WriteFile(qemu, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return qemu, argsFile
}

const testToken = "5eed5eed"

func newTestMachine(qemu string, stdout *bytes.Buffer) *machine {
	return &machine{
		Qemu: qemu, Kernel: "/k/vmlinuz", Initrd: "/k/initramfs.cpio",
		Cmdline: "console=ttyS0 quiet panic=-1 lsm=yama,bpf",
		Memory:  1024, CPUs: 1, Timeout: 20 * time.Second, Grace: 2 * time.Second,
		Token: testToken, Stdout: stdout,
	}
}

func TestMachineRun(t *testing.T) {
	qemu, argsFile := fakeQemu(t, `
echo "[    0.000000] Linux version 6.1.0" >&3
printf '=== RUN   TestPrivX\r\n--- PASS: TestPrivX (0.00s)\r\nPASS' >&4
printf 'vigil-vmtest: `+testToken+` exit=3\r\n' >&4
echo "[    4.6] reboot: Power down" >&3`)
	var out, console bytes.Buffer
	m := newTestMachine(qemu, &out)
	m.Console = &console
	code, err := m.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if code != 3 {
		t.Errorf("exit status %d, want the test's 3", code)
	}
	if diff := cmp.Diff("=== RUN   TestPrivX\n--- PASS: TestPrivX (0.00s)\nPASS", out.String()); diff != "" {
		t.Errorf("test output (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("[    0.000000] Linux version 6.1.0\n[    4.6] reboot: Power down\n", console.String()); diff != "" {
		t.Errorf("console (-want +got):\n%s", diff)
	}

	b, err := os.ReadFile(argsFile)
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Split(strings.TrimSpace(string(b)), "\n")
	for _, want := range [][]string{
		{"-accel", "tcg"}, {"-cpu", "max"}, {"-m", "1024"}, {"-smp", "1"},
		{"-kernel", "/k/vmlinuz"}, {"-initrd", "/k/initramfs.cpio"},
		{"-append", "console=ttyS0 quiet panic=-1 lsm=yama,bpf"},
		{"-serial", "file:/dev/fd/3"}, {"-serial", "file:/dev/fd/4"},
	} {
		if !containsSeq(args, want) {
			t.Errorf("qemu arguments %q lack %q", args, want)
		}
	}
	for _, bad := range []string{"-enable-kvm", "kvm"} {
		if slices.Contains(args, bad) {
			t.Errorf("qemu arguments %q hold %q: KVM hangs on our hosts", args, bad)
		}
	}
	if !slices.Contains(args, "-no-reboot") {
		t.Errorf("qemu arguments %q lack -no-reboot: a panic would reboot forever", args)
	}
}

func containsSeq(s, seq []string) bool {
	for i := 0; i+len(seq) <= len(s); i++ {
		if slices.Equal(s[i:i+len(seq)], seq) {
			return true
		}
	}
	return false
}

func TestMachineRunFailures(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		timeout time.Duration
		cancel  bool
		want    []string
		wantOut string
	}{
		{
			name: "panic",
			body: `echo "[    1.2] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100" >&3
echo "[    1.3] CPU: 0 PID: 1 Comm: init" >&3
exec sleep 60`,
			want: []string{"guest kernel panicked: Kernel panic - not syncing: Attempted to kill init!", "[    1.3] CPU: 0 PID: 1 Comm: init"},
		},
		{
			name:    "hang",
			body:    `echo "[    0.1] booting" >&3; exec sleep 60`,
			timeout: 300 * time.Millisecond,
			want:    []string{"guest did not finish within 300ms (raise it with -timeout", "[    0.1] booting"},
		},
		{
			name:    "hang in a child process",
			body:    `sleep 60; echo never >&4`,
			timeout: 300 * time.Millisecond,
			want:    []string{"guest did not finish within 300ms"},
		},
		{
			name:    "no marker",
			body:    `echo "--- FAIL: TestPrivX" >&4; echo "qemu: terminating on signal 15" >&2; exit 0`,
			want:    []string{"guest stopped without reporting the test's exit status", "--- qemu ---\nqemu: terminating on signal 15"},
			wantOut: "--- FAIL: TestPrivX\n",
		},
		{
			name:    "another run's marker",
			body:    `echo "vigil-vmtest: 00000000 exit=0" >&4; exit 0`,
			want:    []string{"guest stopped without reporting the test's exit status"},
			wantOut: "vigil-vmtest: 00000000 exit=0\n",
		},
		{
			name: "qemu fails",
			body: `echo "qemu-system-x86_64: -kernel /k/vmlinuz: could not open" >&2; exit 1`,
			want: []string{"(qemu: exit status 1)", "could not open"},
		},
		{
			name:   "interrupted",
			body:   `exec sleep 60`,
			cancel: true,
			want:   []string{"interrupted: context canceled"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			qemu, _ := fakeQemu(t, tt.body)
			var out bytes.Buffer
			m := newTestMachine(qemu, &out)
			if tt.timeout > 0 {
				m.Timeout = tt.timeout
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				time.AfterFunc(200*time.Millisecond, cancel)
			}
			start := time.Now()
			code, err := m.Run(ctx)
			var be *bootError
			if !errors.As(err, &be) {
				t.Fatalf("Run = %d, %v; want a *bootError", code, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if got := out.String(); got != tt.wantOut {
				t.Errorf("test output %q, want %q", got, tt.wantOut)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("Run took %s: a failing guest must be stopped promptly", d)
			}
		})
	}
}

func TestMachineRunNoQemu(t *testing.T) {
	var out bytes.Buffer
	m := newTestMachine(filepath.Join(t.TempDir(), "qemu-system-x86_64"), &out)
	_, err := m.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no such file or directory (install it with scripts/setup-host.sh --vm)") {
		t.Errorf("got error %v, want one about the missing qemu", err)
	}
}
