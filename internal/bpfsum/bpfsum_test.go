package bpfsum

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDependenciesFollowIncludes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.bpf.c", "#include \"lib/x.h\"\n#include <bpf/bpf_helpers.h>\n")
	write("b.bpf.c", "#include \"vmlinux.h\"\n")
	write("lib/x.h", "# include \"y.h\"\n")
	write("lib/y.h", "")
	write("include/vmlinux.h", "")
	got, err := Dependencies(dir, []string{"a.bpf.c"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "a.bpf.c"), filepath.Join(dir, "lib/x.h"), filepath.Join(dir, "lib/y.h")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("dependencies of a (-want +got):\n%s", diff)
	}

	ha, _ := HashSources(dir, "a.bpf.c")
	hb, _ := HashSources(dir, "b.bpf.c")
	write("include/vmlinux.h", "changed")
	ha2, _ := HashSources(dir, "a.bpf.c")
	hb2, _ := HashSources(dir, "b.bpf.c")
	if ha != ha2 {
		t.Error("a's hash changed with a header it does not include")
	}
	if hb == hb2 {
		t.Error("b's hash did not change with a header it includes")
	}
	write("c.bpf.c", "#include \"missing.h\"\n")
	if _, err := HashSources(dir, "c.bpf.c"); err == nil {
		t.Error("a missing include was not reported")
	}
}
