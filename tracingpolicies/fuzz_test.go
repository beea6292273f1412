package tracingpolicies

import (
	"os"
	"testing"

	"github.com/vigilsec/vigil/internal/manifest"
)

// FuzzParse feeds arbitrary documents to the parser and, for those that
// parse, to the kernel validator. Whatever the input, they must not panic,
// every problem must name its file, and a parsed policy must be complete:
// what the compiler reads from it is there and in range.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{examplesDir, "testdata"} {
		files, _ := manifest.Files(dir)
		for _, file := range files {
			if data, err := os.ReadFile(file); err == nil {
				f.Add(data)
			}
		}
	}
	f.Add([]byte(header + "  kprobes: [{call: \"list:l\"}]\n  lists: [{name: l, type: syscalls, values: [sys_openat]}]\n"))
	f.Add([]byte(header + "  lsmhooks: [{hook: file_open, args: [{index: 0, type: file}], selectors: [{matchArgs: [{index: 0, operator: Prefix, values: [/etc]}]}]}]\n"))
	kernel := testKernel(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		policies, err := Parse("fuzz.yaml", data)
		for _, e := range manifest.AsErrors("fuzz.yaml", err) {
			if e.File != "fuzz.yaml" || e.Msg == "" {
				t.Fatalf("unlocated or empty problem: %#v", e)
			}
		}
		for _, p := range policies {
			if p.Doc.Err() != nil {
				t.Fatalf("policy %s parsed from a document with problems: %v", p.Name, p.Doc.Err())
			}
			checkPolicy(t, p)
			for _, tracefs := range []*ValidateOptions{nil, {Tracefs: testTracefs}} {
				_, err := Validate(p, kernel, tracefs)
				for _, e := range manifest.AsErrors("fuzz.yaml", err) {
					if e.File != "fuzz.yaml" || e.Line == 0 || e.Path == "" {
						t.Fatalf("kernel problem without location: %#v", e)
					}
				}
			}
		}
	})
}

// checkPolicy checks what the compiler relies on in a parsed policy.
func checkPolicy(t *testing.T, p *Policy) {
	t.Helper()
	if p.Name == "" || p.Doc == nil || (p.Mode != ModeEnforce && p.Mode != ModeMonitor) || len(p.Hooks) == 0 {
		t.Fatalf("incomplete policy: %+v", p)
	}
	for _, h := range p.Hooks {
		if h.Path == "" || (h.Kind == HookTracepoint) == (len(h.Functions) > 0) || len(h.Selectors) > MaxSelectorsPerHook {
			t.Fatalf("incomplete hook: %+v", h)
		}
		for _, a := range h.Args {
			if _, ok := argTypes[a.Type]; !ok {
				t.Fatalf("%s: argument of unknown type %q", h.Path, a.Type)
			}
		}
		for _, s := range h.Selectors {
			if len(s.Actions) == 0 || len(s.Actions) > MaxActionsPerSelector {
				t.Fatalf("%s: %d actions", s.Path, len(s.Actions))
			}
			for _, f := range append(append([]ArgFilter(nil), s.MatchArgs...), s.MatchReturnArgs...) {
				if f.Arg >= len(h.Args) || (f.Arg < 0 && h.ReturnArg == nil) || !operatorAllowed(f.Type, f.Op) ||
					len(f.Values) == 0 || len(f.Values) > MaxValuesPerFilter {
					t.Fatalf("%s: bad filter %+v", s.Path, f)
				}
				if n := len(f.Ints) + len(f.Ports) + len(f.Prefixes); n != 0 && n != len(f.Values) {
					t.Fatalf("%s: %d parsed values for %d values", s.Path, n, len(f.Values))
				}
			}
		}
	}
}
