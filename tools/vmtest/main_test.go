package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestGuestEnv(t *testing.T) {
	host := []string{
		"HOME=/home/dev", "PATH=/usr/bin", "SECRET=x", "GOTRACEBACK=all",
		"VIGIL_NODE_NAME=n1", "VIGIL_PRIVILEGED=0", "VIGIL_VM_KERNEL=/k", "broken",
	}
	want := []string{
		"GOTRACEBACK=all", "HOME=/root", "PATH=/bin", "TMPDIR=/tmp",
		"VIGIL_NODE_NAME=n1", "VIGIL_PRIVILEGED=1",
	}
	if diff := cmp.Diff(want, guestEnv(host)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestKernelCmdline(t *testing.T) {
	dir := t.TempDir()
	cfg := func(content string) string {
		f, err := os.CreateTemp(dir, "config-*")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(content); err != nil {
			t.Fatal(err)
		}
		return f.Name()
	}
	tests := []struct {
		name     string
		k        kernel
		extra    string
		want     string
		wantWarn string
	}{
		{"no config", kernel{}, "", "console=ttyS0 quiet panic=-1", ""},
		{"bpf already active", kernel{Config: cfg("CONFIG_BPF_LSM=y\nCONFIG_LSM=\"yama,bpf\"\n")}, "", "console=ttyS0 quiet panic=-1", ""},
		{"bpf added", kernel{Config: cfg("CONFIG_BPF_LSM=y\nCONFIG_LSM=\"lockdown,yama\"\n")}, "nokaslr", "console=ttyS0 quiet panic=-1 lsm=lockdown,yama,bpf nokaslr", ""},
		{"no BPF LSM", kernel{Config: cfg("CONFIG_LSM=\"yama\"\n")}, "", "console=ttyS0 quiet panic=-1", "without CONFIG_BPF_LSM"},
		{"bad config", kernel{Config: cfg("garbage\n")}, "", "console=ttyS0 quiet panic=-1", `line 1: want CONFIG_NAME=value`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var warn bytes.Buffer
			if got := kernelCmdline(tt.k, tt.extra, &warn); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if tt.wantWarn == "" && warn.Len() > 0 || !strings.Contains(warn.String(), tt.wantWarn) {
				t.Errorf("warning %q, want %q", warn.String(), tt.wantWarn)
			}
		})
	}
}

// fakeTestBinary writes a script that answers -test.list like a test binary
// with the given tests, records the pattern it was asked for and otherwise
// exits with status 7.
func fakeTestBinary(t *testing.T, tests ...string) (bin, listed string) {
	t.Helper()
	dir := t.TempDir()
	bin, listed = filepath.Join(dir, "pkg.test"), filepath.Join(dir, "listed")
	script := "#!/bin/sh\nif [ \"$1\" = -test.list ]; then\n\tprintf %s \"$2\" > " + shellQuote(listed) + "\n"
	for _, name := range tests {
		script += "\techo " + name + "\n"
	}
	script += "\texit 0\nfi\nexit 7\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, listed
}

func TestRunWithoutMatchingTests(t *testing.T) {
	t.Setenv(envKernel, "")
	bin, listed := fakeTestBinary(t)
	var stdout, stderr bytes.Buffer
	// Neither kernel nor qemu exist: a package without privileged tests
	// must not need them.
	code := run([]string{"-kernel", "/nonexistent", "-qemu", "/nonexistent/qemu", bin,
		"-test.paniconexit0", "-test.timeout=10m0s", "-test.run=^TestPriv/sub", "-test.count=1"}, &stdout, &stderr)
	if code != 0 || stdout.String() != "testing: warning: no tests to run\nPASS\n" || stderr.Len() > 0 {
		t.Errorf("run = %d, stdout %q, stderr %q; want 0 and the test binary's no-tests lines", code, stdout.String(), stderr.String())
	}
	if b, err := os.ReadFile(listed); err != nil || string(b) != "^TestPriv" {
		t.Errorf("listed with pattern %q (%v), want the top-level part ^TestPriv", b, err)
	}
}

func TestRunErrors(t *testing.T) {
	t.Setenv(envKernel, "")
	bin, _ := fakeTestBinary(t, "TestPrivProbe")
	kdir := t.TempDir()
	writeFile(t, filepath.Join(kdir, "boot", "vmlinuz-6.1.0-test"), "image")
	failingList := filepath.Join(t.TempDir(), "broken.test")
	writeFile(t, failingList, "#!/bin/sh\necho 'flag provided but not defined: -test.list' >&2\nexit 2\n")
	os.Chmod(failingList, 0o755)

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no kernel flag", []string{bin, "-test.run=^TestPriv"}, "-kernel: no kernel given (pass -kernel DIR or set VIGIL_VM_KERNEL"},
		{"missing kernel", []string{"-kernel", "/nonexistent/6.1", bin, "-test.run=^TestPriv"}, "kernel /nonexistent/6.1: stat /nonexistent/6.1: no such file or directory (run scripts/vm-kernels.sh"},
		{"missing qemu", []string{"-kernel", kdir, "-qemu", "no-such-qemu", bin}, "-qemu: exec: \"no-such-qemu\": executable file not found in $PATH (install it with scripts/setup-host.sh --vm)"},
		{"bad flag value", []string{"-kernel", kdir, "-mem", "64", bin}, "-mem: 64 MiB is too little"},
		{"list fails", []string{"-kernel", kdir, failingList}, "list tests of " + failingList + " on the host: exit status 2\nflag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			if code != exitSetup {
				t.Errorf("exit status %d, want %d", code, exitSetup)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tt.want)
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout %q: a failed setup must not look like test output", stdout.String())
			}
		})
	}
}

func TestRunUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(nil, &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), "no test binary given") {
		t.Errorf("run() = %d, stderr %q", code, stderr.String())
	}
}

func TestRunListOnHost(t *testing.T) {
	// -test.list runs nothing, so the host answers it without a kernel.
	bin, _ := fakeTestBinary(t, "TestPrivA", "TestPrivB")
	var stdout, stderr bytes.Buffer
	code := run([]string{"-kernel", "/nonexistent", bin, "-test.list", "."}, &stdout, &stderr)
	if code != 0 || stdout.String() != "TestPrivA\nTestPrivB\n" {
		t.Errorf("run = %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}
