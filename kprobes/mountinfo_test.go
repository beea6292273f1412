package kprobes

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A hybrid cgroup host like ours, with an escaped space and optional fields.
const sampleMountinfo = `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
25 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
32 30 0:28 / /sys/fs/cgroup/cpu rw shared:11 - cgroup cgroup rw,cpu
40 25 0:40 / /sys/fs/bpf rw,relatime shared:20 - bpf bpf rw
41 25 0:41 / /sys/kernel/tracing rw,relatime shared:21 - tracefs tracefs rw
42 22 0:42 / /mnt/with\040space rw - tmpfs tmpfs rw
43 40 0:43 / /sys/fs/bpf rw master:3 tag:x - tmpfs tmpfs rw
`

func TestReadMounts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(path, []byte(sampleMountinfo), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := readMounts(path)
	if err != nil {
		t.Fatal(err)
	}
	want := mountTable{
		{"/", "ext4"}, {"/sys", "sysfs"}, {"/sys/fs/cgroup", "tmpfs"},
		{"/sys/fs/cgroup/unified", "cgroup2"}, {"/sys/fs/cgroup/cpu", "cgroup"},
		{"/sys/fs/bpf", "bpf"}, {"/sys/kernel/tracing", "tracefs"},
		{"/mnt/with space", "tmpfs"}, {"/sys/fs/bpf", "tmpfs"},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(mount{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if fs := got.fsAt("/sys/fs/bpf"); fs != "tmpfs" {
		t.Errorf("fsAt(/sys/fs/bpf) = %q, want the last mount there (tmpfs over bpf)", fs)
	}
	if p := got.firstOfType("cgroup2"); p != "/sys/fs/cgroup/unified" {
		t.Errorf("firstOfType(cgroup2) = %q", p)
	}
	if p := got.firstOfType("debugfs"); p != "" {
		t.Errorf("firstOfType(debugfs) = %q, want none", p)
	}

	// A table that is not one is an error that names the file, never an
	// empty table (which would read as "nothing mounted").
	bad := filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(bad, []byte("garbage line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readMounts(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("malformed mount table: err = %v, want one naming %s", err, bad)
	}
}

func TestParseLockdown(t *testing.T) {
	for in, want := range map[string]string{
		"none [integrity] confidentiality\n": "integrity",
		"[none] integrity confidentiality":   "none",
		"weird\n":                            "weird",
	} {
		if got := parseLockdown(in); got != want {
			t.Errorf("parseLockdown(%q) = %q, want %q", in, got, want)
		}
	}
}
