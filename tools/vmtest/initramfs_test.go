package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/internal/kerneltest"
)

func TestImageWrite(t *testing.T) {
	host := t.TempDir()
	pkg := filepath.Join(host, "src", "cmd", "vigil")
	writeFile(t, filepath.Join(pkg, "testdata", "policy.yaml"), "kind: TracingPolicy\n")
	writeFile(t, filepath.Join(pkg, "testdata", "sub", "b.txt"), "b")
	if err := os.Symlink("policy.yaml", filepath.Join(pkg, "testdata", "link.yaml")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(pkg, "probe_test.go"), "not packed")
	extra := filepath.Join(host, "src", "examples", "demo.yaml")
	writeFile(t, extra, "demo")
	busybox := filepath.Join(host, "busybox")
	writeFile(t, busybox, "busybox binary")
	bin := filepath.Join(host, "b001", "vigil.test")
	writeFile(t, bin, "test binary")
	mod := filepath.Join(host, "work", "veth.ko")
	writeFile(t, mod, "veth module")

	im := &image{
		Busybox: busybox, Binary: bin, WorkDir: pkg, Include: []string{extra},
		Modules: []string{mod},
		Env:     []string{"PATH=/bin", "VIGIL_PRIVILEGED=1", "VIGIL_NOTE=it's \"quoted\""},
		Args:    []string{"-test.run=^TestPriv", "-test.v=test2json"},
		Token:   "cafe",
	}
	var buf bytes.Buffer
	if err := im.write(&buf); err != nil {
		t.Fatal(err)
	}
	entries, err := readCPIO(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	modes := map[string]uint32{}
	for _, e := range entries {
		if _, dup := modes[e.Name]; dup {
			t.Errorf("%s is in the archive twice", e.Name)
		}
		modes[e.Name] = e.Mode
		if e.Mode&0o170000 != modeDir {
			files[e.Name] = e.Data
		}
	}
	rel := func(p string) string { return strings.TrimPrefix(p, "/") }
	wantFiles := map[string]string{
		"bin/busybox":                      "busybox binary",
		"bin/sh":                           "busybox",
		"dev/console":                      "",
		"dev/null":                         "",
		"etc/passwd":                       "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":                        "root:x:0:\nnogroup:x:65534:\n",
		"vmtest/vigil.test":                "test binary",
		"lib/modules/vmtest/00-veth.ko":    "veth module",
		rel(pkg) + "/testdata/policy.yaml": "kind: TracingPolicy\n",
		rel(pkg) + "/testdata/sub/b.txt":   "b",
		rel(pkg) + "/testdata/link.yaml":   "policy.yaml",
		rel(extra):                         "demo",
		"init":                             files["init"],
	}
	if diff := cmp.Diff(wantFiles, files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	for name, want := range map[string]uint32{
		"init": modeFile | 0o755, "tmp": modeDir | 0o1777, "dev/console": modeCharDev | 0o600,
		rel(pkg): modeDir | 0o755, rel(pkg) + "/testdata/link.yaml": modeSymlink | 0o777,
	} {
		if modes[name] != want {
			t.Errorf("%s has mode %o, want %o", name, modes[name], want)
		}
	}

	init := files["init"]
	for _, want := range []string{
		"mount -t devtmpfs devtmpfs /dev",
		"mnt sysfs sysfs /sys",
		"mnt securityfs securityfs /sys/kernel/security",
		"mnt bpf bpf /sys/fs/bpf",
		"mnt tracefs tracefs /sys/kernel/tracing",
		"mnt cgroup2 cgroup2 /sys/fs/cgroup",
		"mount -t tmpfs -o mode=1777 tmpfs /mnt/tmp",
		"ip link set lo up",
		"insmod '/lib/modules/vmtest/00-veth.ko'",
		"cd " + shellQuote(pkg),
		`env -i 'PATH=/bin' 'VIGIL_PRIVILEGED=1' 'VIGIL_NOTE=it'\''s "quoted"' '/vmtest/vigil.test' '-test.run=^TestPriv' '-test.v=test2json' </dev/null >&3 2>&3`,
		"kill -9 -1",
		`echo 'vigil-vmtest: cafe exit='"$rc" >&3`,
		"poweroff -f",
	} {
		if !strings.Contains(init, want) {
			t.Errorf("init script lacks %q:\n%s", want, init)
		}
	}
}

func TestImageWriteMissingBinary(t *testing.T) {
	im := &image{Busybox: "/nonexistent/busybox", Binary: "/nonexistent/x.test", WorkDir: t.TempDir()}
	err := im.write(&bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/busybox") {
		t.Errorf("got error %v, want one naming the missing busybox", err)
	}
}

func TestShellQuote(t *testing.T) {
	sh := kerneltest.NeedTool(t, "sh")
	for _, s := range []string{"", "plain", "it's", `"double" $HOME \n`, "'", "a\nb", "*"} {
		out, err := exec.Command(sh, "-c", "printf %s "+shellQuote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("sh printf %s = %q, %v; want %q", shellQuote(s), out, err, s)
		}
	}
}

func TestCheckStatic(t *testing.T) {
	static := filepath.Join(t.TempDir(), "static")
	writeFile(t, static, string(fakeModule(t, "x", ""))) // an ELF file without PT_INTERP
	if err := checkStatic(static, "test binary", "hint"); err != nil {
		t.Errorf("ELF file without an interpreter rejected: %v", err)
	}
	// The host's shell is dynamically linked.
	if sh, err := exec.LookPath("sh"); err == nil {
		sh, _ = filepath.EvalSymlinks(sh)
		if err := checkStatic(sh, "test binary", "build it with CGO_ENABLED=0"); err == nil || !strings.Contains(err.Error(), "is dynamically linked; the guest has no shared libraries (build it with CGO_ENABLED=0)") {
			t.Errorf("dynamic %s: got error %v", sh, err)
		}
	}
	notELF := filepath.Join(t.TempDir(), "x")
	writeFile(t, notELF, "#!/bin/sh\n")
	if err := checkStatic(notELF, "test binary", ""); err == nil {
		t.Error("a shell script passed as a static ELF binary")
	}
}

// The test's timeout in the guest is what is left of its budget after
// booting, never more than the timeout go test asked for, and the original
// flag is gone.
func TestInitScriptTestBudget(t *testing.T) {
	im := &image{WorkDir: "/w", Binary: "/x/pkg.test", Token: "tok",
		Args:       []string{"-test.v=test2json", "-test.timeout=10m0s", "-test.run=^TestPriv"},
		TestBudget: 620 * time.Second, TestTimeout: 10 * time.Minute}
	s := im.initScript()
	for _, want := range []string{
		"left=$((620 - up))", `[ "$left" -gt 600 ] && left=600`,
		`'-test.v=test2json' '-test.run=^TestPriv' "-test.timeout=${left}s"`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("init script lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "10m0s") {
		t.Errorf("init script still passes the original timeout:\n%s", s)
	}
	sh := kerneltest.NeedTool(t, "sh")
	// The clause itself, with a boot of 95 s: 525 s are left.
	clause := s[strings.Index(s, "up=$("):strings.Index(s, "env -i")]
	clause = strings.Replace(clause, "up=$(cut -d. -f1 /proc/uptime)", "up=95", 1)
	out, err := exec.Command(sh, "-c", clause+"echo $left").Output()
	if err != nil || strings.TrimSpace(string(out)) != "525" {
		t.Errorf("left after a 95 s boot: %q, %v; want 525", out, err)
	}
}
