package tracingsensor

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Names are found in every directory of the search path, patterns are
// globbed, symbolic links add their targets, what is not an executable
// file is left out, and bad patterns are refused by name.
func TestResolveBinaries(t *testing.T) {
	root := t.TempDir()
	a, b, real := filepath.Join(root, "a"), filepath.Join(root, "b"), filepath.Join(root, "real")
	for _, d := range []string{a, b, real} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	exe := func(p string, mode os.FileMode) {
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	exe(filepath.Join(a, "containerd"), 0o755)
	exe(filepath.Join(b, "containerd"), 0o755)
	exe(filepath.Join(a, "containerd-shim-runc-v2"), 0o755)
	exe(filepath.Join(b, "containerd-shim"), 0o755)
	exe(filepath.Join(a, "kubelet"), 0o644) // not executable
	exe(filepath.Join(real, "runc"), 0o755)
	if err := os.Symlink(filepath.Join(real, "runc"), filepath.Join(b, "runc")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(a, "crio"), 0o755); err != nil { // a directory
		t.Fatal(err)
	}
	dirs := []string{a, "relative/dir", b}

	got, err := resolveBinaries([]string{"containerd", "containerd-shim*", "runc", "kubelet", "crio", "dockerd", filepath.Join(real, "ru?c")}, dirs, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		filepath.Join(a, "containerd"), filepath.Join(a, "containerd-shim-runc-v2"),
		filepath.Join(b, "containerd"), filepath.Join(b, "containerd-shim"), filepath.Join(b, "runc"),
		filepath.Join(real, "runc"),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("resolved (-want +got):\n%s", diff)
	}

	for _, tt := range []struct{ pattern, want string }{
		{"bin/runc", `"bin/runc": give a program's name or its absolute path`},
		{"run[c", `"run[c": syntax error in pattern`},
		{"", "empty name"},
	} {
		if _, err := resolveBinaries([]string{tt.pattern}, dirs, ""); err == nil || err.Error() != tt.want {
			t.Errorf("%q: %v, want %q", tt.pattern, err, tt.want)
		}
	}
}

// The parent is read after the command name, which may hold spaces and
// parentheses.
func TestParentPID(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "42"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "42", "stat"), []byte("42 (a) b (c)) S 7 42 42 0 -1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := parentPID(root, 42); err != nil || got != 7 {
		t.Errorf("parent of 42: %d, %v; want 7", got, err)
	}
	if _, err := parentPID(root, 43); err == nil {
		t.Error("no error for a process that does not exist")
	}
}

// Under another root (the host's, seen from a container), names are looked
// up in that file system, absolute link targets are followed within it, and
// the paths are the ones its processes see.
func TestResolveBinariesUnderRoot(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"usr/bin", "opt/runc/bin"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"usr/bin/containerd", "opt/runc/bin/runc"} {
		if err := os.WriteFile(filepath.Join(root, f), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"bin":          "usr/bin",            // relative, to a directory
		"usr/bin/runc": "/opt/runc/bin/runc", // absolute: within root, not ours
		"usr/bin/loop": "/usr/bin/loop",
	}
	for from, to := range links {
		if err := os.Symlink(to, filepath.Join(root, from)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := resolveBinaries([]string{"containerd", "runc", "loop", "/bin/contain*"}, []string{"/bin", "/usr/bin"}, root+"/")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/bin/containerd", "/bin/runc", "/opt/runc/bin/runc", "/usr/bin/containerd", "/usr/bin/runc"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("resolved (-want +got):\n%s", diff)
	}
}

// With several roots, the paths found in each are protected.
func TestResolveBinariesRoots(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	for root, f := range map[string]string{a: "opt/vigil-test-a/shim", b: "opt/vigil-test-b/shim"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, f), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ResolveBinaries([]string{"/opt/vigil-test-*/shim"}, "", a, b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"/opt/vigil-test-a/shim", "/opt/vigil-test-b/shim"}, got); diff != "" {
		t.Errorf("resolved (-want +got):\n%s", diff)
	}
}

func TestSearchDirs(t *testing.T) {
	got := SearchDirs([]string{"/opt/rt/bin/runtime-*", "/opt/*/shim", "containerd"}, "/home/u/bin:/usr/bin:relative",
		[]string{"/opt/rt/bin/runtime-a", "/usr/libexec/containerd/containerd"})
	want := append([]string{"/opt/rt/bin", "/home/u/bin", "/usr/bin"}, "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/sbin", "/bin", "/usr/libexec/containerd")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("directories (-want +got):\n%s", diff)
	}
	// Absolute patterns alone: $PATH is not searched.
	if got := SearchDirs([]string{"/opt/rt/runc"}, "/usr/bin", nil); !cmp.Equal(got, []string{"/opt/rt"}) {
		t.Errorf("absolute pattern only: %v, want [/opt/rt]", got)
	}
}
