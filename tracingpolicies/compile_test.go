package tracingpolicies

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/internal/manifest"
	"github.com/vigilsec/vigil/kprobes"
	"github.com/vigilsec/vigil/kprobes/abi"
)

var updateCompiled = flag.Bool("update", false, "rewrite testdata/compiled/*.golden")

// seqIDs hands out ids in order, as the loader would for a first policy.
type seqIDs struct {
	hook, set uint32
	bit       uint8
}

func (s *seqIDs) HookID() (uint32, error) { s.hook++; return s.hook, nil }
func (s *seqIDs) SetID() uint32           { s.set++; return s.set }
func (s *seqIDs) FollowBit() (uint8, error) {
	s.bit++
	return s.bit - 1, nil
}

var testKernelInfo = &KernelInfo{
	TracepointFields: func(sub, ev string) ([]kprobes.TracepointField, error) {
		return nil, errors.New("no tracefs in this test")
	},
	HostNamespace: func(ns NamespaceType) (uint32, error) { return 4026531836, nil },
}

func compileDoc(t *testing.T, name, doc string) *Compiled {
	t.Helper()
	ps, err := Parse(name, []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Compile(ps[0], 1, &seqIDs{}, testKernelInfo)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A string that a selector reads whole on every call it gets (a Postfix
// first, no process filter before it) is marked so that the head checks of
// the other selectors take their bytes from the record; one behind a
// cheaper filter, a binary filter or a negation is not, and a Postfix set's
// tails (their last bytes, the shortest value's length) are in the heads
// map.
func TestCompileWholeStrings(t *testing.T) {
	whole := uint8(abi.GenericGenArgFlagsGEN_ARGF_WHOLE)
	for _, tc := range []struct {
		name, selector string
		want           bool
	}{
		{"postfix", `{matchArgs: [{index: 1, operator: Postfix, values: [shadow, id_rsa]}]}`, true},
		{"postfix behind a mask", `{matchArgs: [{index: 1, operator: Postfix, values: [shadow]}, {index: 2, operator: Mask, values: ["0x243"]}]}`, false},
		{"postfix behind a binary", `{matchArgs: [{index: 1, operator: Postfix, values: [shadow]}], matchBinaries: [{operator: In, values: [/usr/bin/cat]}]}`, false},
		{"not postfix", `{matchArgs: [{index: 1, operator: NotPostfix, values: [shadow]}]}`, false},
		{"prefix", `{matchArgs: [{index: 1, operator: Prefix, values: [/etc/]}]}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := compileDoc(t, "p.yaml", `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata: {name: p}
spec:
  kprobes:
  - call: sys_openat
    syscall: true
    args:
    - {index: 1, type: string}
    - {index: 2, type: int}
    selectors:
    - {matchArgs: [{index: 1, operator: Prefix, values: [/etc/shadow]}]}
    - `+tc.selector+"\n")
			cfg := c.Hooks[0].Configs[0]
			if got := cfg.Args[0].Flags&whole != 0; got != tc.want {
				t.Errorf("filename marked read whole: %v, want %v", got, tc.want)
			}
			if cfg.Args[1].Flags&whole != 0 {
				t.Error("the flags argument is marked read whole")
			}
		})
	}
	c := compileDoc(t, "p.yaml", `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata: {name: p}
spec:
  kprobes:
  - call: sys_openat
    syscall: true
    args:
    - {index: 1, type: string}
    selectors:
    - {matchArgs: [{index: 1, operator: Postfix, values: [shadow, sudoers, id_rsa]}]}
`)
	f := c.Hooks[0].Selectors[0].Args[0]
	var tails []string
	for _, k := range c.StrHeads {
		if k.SetId == f.SetId {
			tails = append(tails, string(k.Head[:k.Len]))
		}
	}
	slices.Sort(tails)
	if f.Value != 6 || !slices.Equal(tails, []string{"id_rsa", "shadow", "udoers"}) {
		t.Errorf("Postfix tails: length %d, %q; want 6, [id_rsa shadow udoers]", f.Value, tails)
	}
}

// The kernel evaluates a selector's argument filters in the order of the
// compiled form: integers first, strings last, whatever the order written.
func TestCompileOrdersFiltersByCost(t *testing.T) {
	c := compileDoc(t, "p.yaml", `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata: {name: p}
spec:
  kprobes:
  - call: sys_openat
    syscall: true
    args:
    - {index: 1, type: string}
    - {index: 2, type: int}
    selectors:
    - matchArgs:
      - {index: 1, operator: Prefix, values: [/etc/]}
      - {index: 2, operator: Mask, values: ["0x243"]}
      - {index: 1, operator: NotPostfix, values: [.conf]}
`)
	sel := c.Hooks[0].Selectors[0]
	var got []string
	for _, f := range sel.Args[:sel.Nargs] {
		got = append(got, fmt.Sprintf("%s(arg %d)", opName(f.Op), f.Arg))
	}
	// Filters name the hook's arguments by position in its args list.
	want := []string{"mask(arg 1)", "prefix(arg 0)", "postfix(arg 0)"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("filter order (-want +got):\n%s", diff)
	}
}

func opName(op uint8) string {
	switch abi.GenOp(op) {
	case abi.GenericGenOpGEN_OP_INT_IN:
		return "in"
	case abi.GenericGenOpGEN_OP_GT:
		return "gt"
	case abi.GenericGenOpGEN_OP_LT:
		return "lt"
	case abi.GenericGenOpGEN_OP_MASK:
		return "mask"
	case abi.GenericGenOpGEN_OP_STR_EQ:
		return "equal"
	case abi.GenericGenOpGEN_OP_STR_PREFIX:
		return "prefix"
	case abi.GenericGenOpGEN_OP_STR_POSTFIX:
		return "postfix"
	}
	return fmt.Sprintf("op%d", op)
}

// dumpCompiled renders the kernel form of a policy readably: every hook's
// configuration and selectors, and the contents of its value sets.
func dumpCompiled(c *Compiled) string {
	var b strings.Builder
	fmt.Fprintf(&b, "policy %s: id %d mode %d scoped %d\n", c.Policy.Name, c.PolicyID, c.State.Mode, c.State.Scoped)
	for _, h := range c.Hooks {
		fmt.Fprintf(&b, "hook %s %v return=%v override=%v enforces=%v\n", h.Source.Path, h.Request.Kind, h.Request.Return, h.Request.Override, h.Enforces)
		for i, t := range h.Request.Targets {
			cfg := h.Configs[i]
			fmt.Fprintf(&b, "  target %d %s: flags %#x nargs %d nsel %d args %+v\n", t.ID, t.Name, cfg.Flags, cfg.Nargs, cfg.Nsel, cfg.Args[:cfg.Nargs])
		}
		for i, s := range h.Selectors {
			fmt.Fprintf(&b, "  selector %d: actions %#x errno %d signal %d rate %dms explicit %d\n", i, s.Actions, s.Errno, s.Signal, s.RateMs, s.ExplicitTarget)
			for _, f := range s.Args[:s.Nargs] {
				fmt.Fprintf(&b, "    arg %d %s negate=%d signed=%d set %d value %#x\n", f.Arg, opName(f.Op), f.Negate, f.IsSigned, f.SetId, f.Value)
			}
			for _, f := range s.Bins[:s.Nbins] {
				fmt.Fprintf(&b, "    binary op %d negate=%d follow=%d set %d\n", f.Op, f.Negate, f.Follow, f.SetId)
			}
		}
	}
	var sets []string
	for _, k := range c.IntSets {
		sets = append(sets, fmt.Sprintf("int set %d: %d", k.SetId, int64(k.Value)))
	}
	for _, k := range c.StrSets {
		sets = append(sets, fmt.Sprintf("string set %d: %q (%d bits)", k.SetId, strings.TrimRight(string(k.Data[:]), "\x00"), k.Prefixlen))
	}
	for _, k := range c.StrHeads {
		sets = append(sets, fmt.Sprintf("string set %d head: %q", k.SetId, string(k.Head[:k.Len])))
	}
	sort.Strings(sets)
	for _, s := range sets {
		fmt.Fprintln(&b, s)
	}
	return b.String()
}

// TestCompiledGolden holds the kernel form of the example policies that
// compile without a kernel (no tracepoints) against testdata/compiled: a
// change to the compiler shows up here, byte by byte.
func TestCompiledGolden(t *testing.T) {
	files, err := manifest.Files(examplesDir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ps, err := Parse(f, data)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			c, err := Compile(p, 1, &seqIDs{}, testKernelInfo)
			if err != nil {
				continue // needs a kernel (tracepoint formats)
			}
			n++
			golden := filepath.Join("testdata", "compiled", p.Name+".golden")
			got := dumpCompiled(c)
			if *updateCompiled {
				os.MkdirAll(filepath.Dir(golden), 0o755)
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test ./tracingpolicies -run TestCompiledGolden -update writes it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("%s compiled differently from %s (-want +got):\n%s", f, golden, diff)
			}
		}
	}
	if n < 10 {
		t.Errorf("only %d example policies compiled without a kernel", n)
	}
}

func TestRepeatedEventsOption(t *testing.T) {
	doc := func(v string) string {
		return `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata: {name: p}
spec:
  options:
  - {name: repeated-events, value: "` + v + `"}
  kprobes:
  - {call: sys_openat, syscall: true}
`
	}
	for _, tc := range []struct {
		value   string
		want    Repeats
		repeats uint8
	}{
		{"fold", Repeats{Window: time.Second}, uint8(abi.GenericGenRepeatsGEN_REPEATS_FOLD)},
		{"report-all", Repeats{ReportAll: true}, uint8(abi.GenericGenRepeatsGEN_REPEATS_REPORT)},
		{"rate-limit=1m", Repeats{Window: time.Minute}, uint8(abi.GenericGenRepeatsGEN_REPEATS_FOLD)},
	} {
		c := compileDoc(t, "p.yaml", doc(tc.value))
		if c.Policy.Repeats != tc.want || c.State.Repeats != tc.repeats {
			t.Errorf("%s: %+v in the kernel as %d, want %+v as %d", tc.value, c.Policy.Repeats, c.State.Repeats, tc.want, tc.repeats)
		}
	}
	// The default folds, every second.
	c := compileDoc(t, "p.yaml", `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata: {name: p}
spec:
  kprobes:
  - {call: sys_openat, syscall: true}
`)
	if c.Policy.Repeats != (Repeats{Window: time.Second}) {
		t.Errorf("default %+v, want folding every second", c.Policy.Repeats)
	}
	for _, bad := range []string{"folds", "rate-limit=10ms", "rate-limit=forever", ""} {
		_, err := Parse("p.yaml", []byte(doc(bad)))
		if err == nil || !strings.Contains(err.Error(), "p.yaml:6: spec.options[0].value:") {
			t.Errorf("%q: %v, want an error at p.yaml:6 naming spec.options[0].value", bad, err)
		}
	}
}

// A selector may act on protected processes only when it names them
// exactly and its policy sets allow-protected-enforcement.
func TestCompileProtectedOptIn(t *testing.T) {
	doc := func(optIn bool, sel string) string {
		opts := ""
		if optIn {
			opts = "  options: [{name: allow-protected-enforcement, value: \"true\"}]\n"
		}
		return `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata: {name: p}
spec:
` + opts + `  kprobes:
  - call: sys_getpgid
    syscall: true
    selectors:
    - ` + sel + `
      matchActions: [{action: Sigkill}]
`
	}
	for _, tt := range []struct {
		name  string
		optIn bool
		sel   string
		want  uint8
	}{
		{"exact binary with the opt-in", true, `matchBinaries: [{operator: In, values: [/usr/bin/containerd]}]`, 1},
		{"exact host PID with the opt-in", true, `matchPIDs: [{operator: In, values: [1]}]`, 1},
		{"exact binary without the opt-in", false, `matchBinaries: [{operator: In, values: [/usr/bin/containerd]}]`, 0},
		{"exact host PID without the opt-in", false, `matchPIDs: [{operator: In, values: [1]}]`, 0},
		{"binary prefix", true, `matchBinaries: [{operator: Prefix, values: [/usr/bin/containerd]}]`, 0},
		{"binary postfix", true, `matchBinaries: [{operator: Postfix, values: [/containerd]}]`, 0},
		{"binary with its children", true, `matchBinaries: [{operator: In, values: [/usr/bin/containerd], followChildren: true}]`, 0},
		{"namespace PID", true, `matchPIDs: [{operator: In, isNamespacePID: true, values: [1]}]`, 0},
		{"PID with its descendants", true, `matchPIDs: [{operator: In, followForks: true, values: [1]}]`, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := compileDoc(t, "p.yaml", doc(tt.optIn, tt.sel))
			if got := c.Hooks[0].Selectors[0].ExplicitTarget; got != tt.want {
				t.Errorf("explicit target %d, want %d", got, tt.want)
			}
		})
	}
}
