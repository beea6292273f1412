package tracingpolicies

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/vigilsec/vigil/internal/manifest"
)

const examplesDir = "../examples/tracingpolicy"

// hostKernel returns the running kernel's BTF and tracefs, or nil when the
// kernel has none (the examples are then checked without a kernel).
func hostKernel(t *testing.T) (*btf.Spec, *ValidateOptions) {
	t.Helper()
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		t.Logf("no kernel BTF (%v): examples are checked without the kernel", err)
		return nil, nil
	}
	opts := &ValidateOptions{}
	for _, dir := range []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"} {
		if _, err := os.Stat(filepath.Join(dir, "events")); err == nil {
			opts.Tracefs = os.DirFS(dir)
			break
		}
	}
	return spec, opts
}

func TestExamples(t *testing.T) {
	files, err := manifest.Files(examplesDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 12 {
		t.Fatalf("%d example policies, want at least 12", len(files))
	}
	spec, opts := hostKernel(t)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(data), "# ") {
				t.Error("an example starts with a comment saying what it does and which kernels it loads on")
			}
			policies, err := ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range policies {
				if want := strings.TrimSuffix(filepath.Base(file), ".yaml"); p.Name != want {
					t.Errorf("policy %q is in %s; name it after its file", p.Name, filepath.Base(file))
				}
				for _, w := range p.Warnings {
					t.Errorf("warning: %v", w)
				}
				warnings, err := Validate(p, spec, opts)
				for _, e := range manifest.AsErrors(file, err) {
					t.Errorf("on this kernel: %v", e)
				}
				for _, w := range warnings {
					t.Errorf("warning on this kernel: %v", w)
				}
			}
		})
	}
}

// TestExamplesCatchMistakes checks that the example checks can fail: a
// broken copy of an example is refused.
func TestExamplesCatchMistakes(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(examplesDir, "deny-exec-tmp.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(data), "operator: Prefix", "operator: Prefx", 1)
	_, err = Parse("deny-exec-tmp.yaml", []byte(broken))
	var list manifest.Errors
	if !errors.As(err, &list) || len(list) != 1 || list[0].Path != "spec.lsmhooks[0].selectors[0].matchArgs[0].operator" {
		t.Errorf("a misspelt operator must be reported at its path, got %v", err)
	}
	// Without its matchArgs filter the Override would deny every exec.
	unsafe := strings.Replace(string(data), "    - matchArgs:\n      - index: 0\n        operator: Prefix\n        values: [/tmp/, /var/tmp/, /dev/shm/]\n      matchActions:", "    - matchActions:", 1)
	if unsafe == string(data) {
		t.Fatal("the example changed; update this test")
	}
	_, err = Parse("deny-exec-tmp.yaml", []byte(unsafe))
	if err == nil || !strings.Contains(err.Error(), "REFUSED") {
		t.Errorf("an unrestricted Override on bprm_check_security must be refused, got %v", err)
	}
}

// TestTetragonPolicies loads policies written for Tetragon, with its
// spellings and defaults, unchanged.
func TestTetragonPolicies(t *testing.T) {
	files, err := manifest.Files("testdata/tetragon")
	if err != nil || len(files) == 0 {
		t.Fatalf("no Tetragon policies in testdata/tetragon: %v", err)
	}
	spec, opts := hostKernel(t)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			policies, err := ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range policies {
				if p.Doc.APIVersion != APIVersionCilium {
					t.Errorf("%s is not a Tetragon document", file)
				}
				_, err := Validate(p, spec, opts)
				for _, e := range manifest.AsErrors(file, err) {
					t.Errorf("on this kernel: %v", e)
				}
			}
		})
	}
}
