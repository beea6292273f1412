package kprobes_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigilsec/vigil/internal/kerneltest"
	. "github.com/vigilsec/vigil/kprobes"
)

// TestPrivProbePrerequisites points Probe at missing kernel interfaces and
// checks that it stops with an ErrPrerequisite that says what to do. It is
// privileged because the capability check comes first.
func TestPrivProbePrerequisites(t *testing.T) {
	kerneltest.Require(t)
	dir := t.TempDir()
	notBPFFS := t.TempDir()
	// A mount table in which dir is a bpffs: Probe must read the table it
	// is given, not the real one.
	fakeMounts := filepath.Join(dir, "mountinfo")
	line := "40 1 0:40 / " + dir + " rw,relatime shared:20 - bpf bpf rw\n"
	if err := os.WriteFile(fakeMounts, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		paths Paths
		want  string
	}{
		{"no BTF", Paths{BTF: filepath.Join(dir, "vmlinux")},
			"kernel BTF not found at " + filepath.Join(dir, "vmlinux") + ": Vigil needs a kernel built with CONFIG_DEBUG_INFO_BTF=y"},
		{"no bpffs", Paths{BPFFS: notBPFFS},
			"bpffs is not mounted at " + notBPFFS + ": run 'mount -t bpf bpf " + notBPFFS + "'"},
		{"unreadable mount table", Paths{Mountinfo: filepath.Join(dir, "missing")},
			"read " + filepath.Join(dir, "missing") + ": read mounts: open " + filepath.Join(dir, "missing") + ": no such file or directory"},
		{"bpffs elsewhere in the given mount table", Paths{Mountinfo: fakeMounts}, "bpffs is not mounted at /sys/fs/bpf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Probe(&tt.paths)
			if !errors.Is(err, ErrPrerequisite) {
				t.Fatalf("Probe = %v, %v; want an ErrPrerequisite", f, err)
			}
			if f != nil {
				t.Error("Probe returned a report along with the error")
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error %q\nwant it to start with %q", err, tt.want)
			}
		})
	}

	if err := CheckPrerequisites(&Paths{BPFFS: dir, Mountinfo: fakeMounts}); err != nil {
		t.Errorf("bpffs at %s in the given mount table: %v", dir, err)
	}
}
