package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseKernelConfig(t *testing.T) {
	in := `#
# Automatically generated file; DO NOT EDIT.
#
CONFIG_BPF_LSM=y
# CONFIG_BPF_KPROBE_OVERRIDE is not set
CONFIG_LSM="landlock,lockdown,yama,bpf"

CONFIG_NR_CPUS=64
`
	got, err := parseKernelConfig([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := kernelConfig{
		"CONFIG_BPF_LSM": "y",
		"CONFIG_LSM":     "landlock,lockdown,yama,bpf",
		"CONFIG_NR_CPUS": "64",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}

	_, err = parseKernelConfig([]byte("CONFIG_A=y\nnot a config line\n"))
	if err == nil || err.Error() != `line 2: want CONFIG_NAME=value, got "not a config line"` {
		t.Errorf("bad line: got error %v", err)
	}
}

func FuzzParseKernelConfig(f *testing.F) {
	f.Add([]byte("CONFIG_LSM=\"a,b\"\n# c\nCONFIG_X=y\n"))
	f.Add([]byte("bogus"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := parseKernelConfig(b)
		if err == nil {
			for k := range cfg {
				if !strings.HasPrefix(k, "CONFIG_") {
					t.Errorf("key %q without CONFIG_ prefix", k)
				}
			}
		}
	})
}

func TestBPFLSMArg(t *testing.T) {
	tests := []struct {
		name    string
		cfg     kernelConfig
		want    string
		wantErr string
	}{
		{"already active (Debian 6.1)", kernelConfig{"CONFIG_BPF_LSM": "y",
			"CONFIG_LSM": "landlock,lockdown,yama,loadpin,safesetid,integrity,apparmor,selinux,smack,tomoyo,bpf"}, "", ""},
		{"built but not in the default list", kernelConfig{"CONFIG_BPF_LSM": "y",
			"CONFIG_LSM": "lockdown,yama,apparmor"}, "lsm=lockdown,yama,apparmor,bpf", ""},
		{"no default list", kernelConfig{"CONFIG_BPF_LSM": "y"}, "lsm=bpf", ""},
		{"not built", kernelConfig{"CONFIG_LSM": "lockdown,bpf"}, "", "without CONFIG_BPF_LSM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := bpfLSMArg(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFindKernel(t *testing.T) {
	// An unpacked Debian kernel package.
	pkg := t.TempDir()
	rel := "6.1.0-56-cloud-amd64"
	writeFile(t, filepath.Join(pkg, "boot", "vmlinuz-"+rel), "image")
	writeFile(t, filepath.Join(pkg, "boot", "config-"+rel), "CONFIG_BPF_LSM=y\n")
	writeFile(t, filepath.Join(pkg, "lib", "modules", rel, "modules.order"), "")
	want := kernel{
		Image:   filepath.Join(pkg, "boot", "vmlinuz-"+rel),
		Release: rel,
		Config:  filepath.Join(pkg, "boot", "config-"+rel),
		Modules: filepath.Join(pkg, "lib", "modules", rel),
	}
	for _, p := range []string{pkg, want.Image} {
		got, err := findKernel(p)
		if err != nil {
			t.Fatalf("findKernel(%s): %v", p, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("findKernel(%s) (-want +got):\n%s", p, diff)
		}
	}

	// A bare image: no release, config or modules.
	bare := filepath.Join(t.TempDir(), "bzImage")
	writeFile(t, bare, "image")
	got, err := findKernel(bare)
	if err != nil || got != (kernel{Image: bare}) {
		t.Errorf("findKernel(%s) = %+v, %v", bare, got, err)
	}

	errTests := []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(pkg, "nope"), "run scripts/vm-kernels.sh"},
		{"empty folder", t.TempDir(), "no boot/vmlinuz-* in this folder"},
		{"two images", func() string {
			d := t.TempDir()
			writeFile(t, filepath.Join(d, "boot", "vmlinuz-a"), "")
			writeFile(t, filepath.Join(d, "boot", "vmlinuz-b"), "")
			return d
		}(), "several kernel images"},
	}
	for _, tt := range errTests {
		if _, err := findKernel(tt.path); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got error %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}
