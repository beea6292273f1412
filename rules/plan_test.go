package rules

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/open-policy-agent/opa/v1/ast"
)

func libRules(t testing.TB) []*Rule {
	t.Helper()
	srcs, err := defaultSources(false)
	if err != nil {
		t.Fatal(err)
	}
	var out []*Rule
	for _, s := range srcs {
		out = append(out, mustRule(t, s.file, s.text))
	}
	return out
}

func execJSON(binary, args, pod string) string {
	p := ""
	if pod != "" {
		p = fmt.Sprintf(`,"pod":{"namespace":%q,"name":"p","pod_labels":{"app":"web","tier":"db"}}`, pod)
	}
	return fmt.Sprintf(`{"process_exec":{"process":{"binary":%q,"arguments":%q,"uid":1000%s},"parent":{"binary":"/bin/bash"}}}`, binary, args, p)
}

const kprobeJSON = `{"process_kprobe":{"policy_name":"pol","function_name":"__x64_sys_openat","process":{"binary":"/usr/bin/cat"},` +
	`"args":[{"label":"filename","string_arg":"/etc/shadow"},{"label":"flags","int_arg":577}]}}`

// kprobeTwice has two arguments labelled filename: arg() has two values.
const kprobeTwice = `{"process_kprobe":{"policy_name":"pol","function_name":"__x64_sys_openat","process":{"binary":"/usr/bin/cat"},` +
	`"args":[{"label":"filename","string_arg":"/etc/shadow"},{"label":"filename","string_arg":"/etc/x"}]}}`

// planCase is a rule body, whether Go evaluates it, inputs, and which of
// them Rego reports an error on.
type planCase struct {
	name, head, body string
	complete         bool
	in               []string
	// errIn marks the inputs on which Rego reports an error: those
	// holding it.
	errIn string
}

// planCases are rules of every form the compiler reads, and forms it
// leaves to Rego.
func planCases() []planCase {
	weird := []string{
		`{"process_exec":{"process":{"binary":7,"arguments":["a"],"uid":"0"}}}`,
		`{"process_exec":{"process":{"binary":"/bin/x","uid":1.5,"pod":{"namespace":false}}}}`,
		`{"process_exec":{}}`, `{"process_exec":[]}`, `{"process_exec":{"process":null}}`,
		`{"process_exec":{"process":{"binary":"/bin/x","uid":1e3,"pod":{"namespace":"n","pod_labels":[1]}}}}`,
	}
	execs := append([]string{execJSON("/bin/x", "", ""), execJSON("/bin/y", "-c x", "shop"), execJSON("/usr/bin/nc", "-e sh", "shop"),
		execJSON("/tmp/a/b", "a b", ""), execJSON("/bin/bash", "", "shop"), execJSON("/dev/shm/x", "", "kube-system"),
		execJSON("/bin/X", "-i", "")}, weird...)
	return []planCase{
		{"equality through an alias", "", `p := input.process_exec.process
			p.binary == "/bin/x"`, true, execs, ""},
		{"constant on the left", "", `"/bin/x" = input.process_exec.process.binary`, true, execs, ""},
		{"basename in a module constant", `names := {"nc", "socat"}`, `events.basename(input.process_exec.process.binary) in names`, true, execs, ""},
		{"library constant and function", "", `p := input.process_exec.process
			events.basename(p.binary) in events.netcats
			events.is_shell(object.get(input.process_exec, ["parent", "binary"], ""))
			msg := sprintf("%s under %s in %s", [p.binary, input.process_exec.parent.binary, events.container(p)])`, true, execs, ""},
		{"is_shell and in_container", "", `p := input.process_exec.process
			events.is_shell(p.binary)
			events.in_container(p)`, true, execs, ""},
		{"every match of some", `dirs := ["/tmp/", "/tmp/a/", "/dev/shm/"]`, `some d in dirs
			startswith(input.process_exec.process.binary, d)
			msg := sprintf("%s in %s", [input.process_exec.process.binary, d])`, true, execs, ""},
		{"some key and value of an input object", "", `some k, v in input.process_exec.process.pod.pod_labels
			k != "tier"
			msg := sprintf("%s=%s", [k, v])`, true, execs, ""},
		{"some value of an input array", "", `some i, a in input.process_kprobe.args
			a.label == "flags"
			msg := sprintf("%d: %d", [i, bits.and(a.int_arg, 64)])`, true, []string{kprobeJSON, kprobeTwice}, ""},
		{"policy event argument", "", `ev := input.process_kprobe
			ev.policy_name == "pol"
			events.syscall_name(ev.function_name) == "openat"
			path := events.arg(ev, "filename").string_arg
			startswith(path, "/etc/")
			msg := path`, true, []string{kprobeJSON, kprobeTwice, `{"process_kprobe":{"policy_name":"other"}}`,
			`{"process_kprobe":{"policy_name":"pol","function_name":"__x64_sys_openat","args":[]}}`}, `"/etc/x"`},
		{"negation", "", `not input.process_exec.process.binary == "/bin/x"`, true, execs, ""},
		{"negated membership", "", `not events.basename(input.process_exec.process.binary) in {"x", "y"}
			msg := sprintf("%v", [input.process_exec.process.uid])`, true, execs, ""},
		{"builtins computed by OPA", "", `b := lower(input.process_exec.process.binary)
			parts := split(b, "/")
			count(parts) > 2
			msg := concat(",", [trim_prefix(b, "/"), format_int(count(parts) - 1, 10), upper(parts[1])])`, true, execs, ""},
		{"numbers", "", `u := input.process_exec.process.uid
			u >= 1000
			bits.and(u, 8) != 0
			msg := sprintf("uid %d %s %v", [u, u, u + 1])`, true, execs, ""},
		{"object.get with a default", "", `a := object.get(input.process_exec.process, "arguments", "none")
			l := object.get(input.process_exec.process, ["pod", "pod_labels", "app"], "-")
			msg := sprintf("%s %s", [a, l])`, true, execs, ""},
		{"constant object indexed by input", `kinds := {"/bin/x": "x", "/bin/y": "y", "7": "seven"}`, `msg := kinds[input.process_exec.process.binary]`, true, execs, ""},
		{"library function on a number", "", `events.basename(input.process_exec.process.binary) == "x"`, true, execs, ""},
		{"two bodies", "", `input.process_exec.process.binary == "/bin/x"
		}

		alert contains "y" if {
			input.process_exec.process.binary == "/bin/y"`, true, execs, ""},
		{"functions of the module", `
f(_, 1)

f(x, 2) if startswith(x, "/bin")

f(x, 3) := false if x == "/bin/x"

name(x) := "short" if count(x) < 7

name(x) := "long" if count(x) >= 7

default name(_) := "none"`, `p := input.process_exec.process
			f(p.binary, object.get(p, "uid", 1) - 998)
			msg := name(p.binary)`, true, execs, ""},
		{"functions with two values", `
g(x) := 1 if startswith(x, "/bin/")

g(x) := 2 if endswith(x, "x")`, `msg := sprintf("%d", [g(input.process_exec.process.binary)])`, true, execs, `"binary":"/bin/x"`},
		{"a description that is not a string", "", `input.process_exec.process.binary == "/bin/x"
			msg := 5`, true, execs, `"binary":"/bin/x"`},
		// What the compiler leaves to Rego: the rule is Rego's, the
		// guard keeps what it understands.
		{"a local declared without a value", `names := {"nc"}`, `some names
			names = "zz"
			events.basename(input.process_exec.process.binary) in names`, false, execs, ""},
		{"a comprehension", "", `input.process_exec.process.binary == "/bin/x"
			count([a | some a in input.process_exec.process.pod.pod_labels]) >= 0`, false, execs, ""},
		{"with", "", `input.process_exec.process.binary == "/bin/x"
			events.is_shell(input.process_exec.process.binary) with input.process_exec.process.binary as "/bin/sh"`, false, execs, ""},
		{"a function with else", `h(x) := 1 if { x == "/bin/x" } else := 2`, `h(input.process_exec.process.binary) == 1`, false, execs, ""},
		{"unification with an unbound variable", "", `x = input.process_exec.process.binary
			x == "/bin/x"`, false, execs, ""},
		{"a rule with a body", `is_x if input.process_exec.process.binary == "/bin/x"`, `is_x`, false, execs, ""},
	}
}

// compileCase compiles the rule of tc with the embedded library.
func compileCase(tb testing.TB, tc planCase) *Set {
	tb.Helper()
	meta := strings.Replace(goodMeta, `"events": ["process_exec"]`, `"events": ["process_exec", "process_kprobe"]`, 1)
	src := fmt.Sprintf("package vigil.rules.g\n\nimport data.vigil.lib.events\n\nmetadata := %s\n\n%s\n\nalert contains msg if {\n%s\n}\n", meta, tc.head, tc.body)
	if !strings.Contains(tc.body, "msg :=") {
		src = strings.Replace(src, "alert contains msg if", `alert contains "x" if`, 1)
	}
	set, err := Compile(context.Background(), append(libRules(tb), mustRule(tb, "g.rego", src)))
	if err != nil {
		tb.Fatal(err)
	}
	return set
}

// Rules of every form the compiler reads, and forms it leaves to Rego:
// whether Go decides them, and on each input that Go's alerts are
// Rego's, that a guard never fails where Rego alerts, and that what Go
// cannot decide exactly (a function with two values, a description that
// is not a string) goes to Rego, which reports it.
func TestPlans(t *testing.T) {
	for _, tc := range planCases() {
		t.Run(tc.name, func(t *testing.T) {
			set := compileCase(t, tc)
			for _, typ := range set.rules[0].Events {
				tr := set.byType[typ]
				if got := tr.plans[0].complete; got != tc.complete {
					t.Fatalf("evaluated in Go: %v, want %v", got, tc.complete)
				}
			}
			alerts, errors := 0, 0
			for _, in := range tc.in {
				v, typ, err := ParseInput([]byte(in))
				if err != nil {
					t.Fatal(err)
				}
				tr := set.byType[typ]
				want := regoOutcome(tr, 0, v)
				alerts += len(want.Alerts)
				errs := tc.errIn != "" && strings.Contains(in, tc.errIn)
				if errs {
					errors++
				}
				if want.Err != errs {
					t.Errorf("Rego error %v on %s", want.Err, in)
				}
				c := newEctx(nil)
				c.reset(fromAST(v), set.memo)
				p := tr.plans[0]
				cand := slices.Clone(tr.index.candidates(c))
				if !p.mayAlert(c, cand, 0) && len(want.Alerts) > 0 {
					t.Errorf("the guard fails on %s, where Rego alerts %q", in, want.Alerts)
				}
				if !p.complete {
					continue
				}
				descs, ok := p.alerts(c, cand, 0)
				if !ok {
					if !want.Err {
						t.Errorf("Go left %s to Rego, which has no error on it", in)
					}
					continue
				}
				if diff := cmp.Diff(want, outcome{Alerts: slices.Clone(descs)}); diff != "" {
					t.Errorf("on %s (-rego +go):\n%s", in, diff)
				}
			}
			if alerts+errors == 0 && tc.complete {
				t.Errorf("no input raises an alert: the case tests nothing")
			}
			// Through the set, as the engine and vigil rules test use it.
			for _, in := range tc.in {
				v, typ, _ := ParseInput([]byte(in))
				_, errs := set.Eval(context.Background(), typ, v)
				if want := tc.errIn != "" && strings.Contains(in, tc.errIn); want != (len(errs) == 1) {
					t.Errorf("Eval on %s: errors %v, want the rule's: %v", in, errs, want)
				}
			}
		})
	}
}

// FuzzPlans compares Go and Rego for the rules of planCases on fuzzed
// inputs: any JSON object, so values of every type where the rules expect
// strings and numbers.
func FuzzPlans(f *testing.F) {
	var sets []*Set
	for _, tc := range planCases() {
		sets = append(sets, compileCase(f, tc))
		for _, in := range tc.in {
			f.Add([]byte(in))
		}
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		v, typ, err := ParseInput(line)
		if err != nil {
			return
		}
		for _, set := range sets {
			q := &equivalence{set: set}
			c := newEctx(nil)
			c.reset(fromAST(v), set.memo)
			if err := q.check(c, typ, v); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// The embedded library's functions computed in Go give what lib.rego's
// give, for strings and for values of other types.
func TestNativeLibraryFunctions(t *testing.T) {
	set, err := Compile(context.Background(), libRules(t))
	if err != nil {
		t.Fatal(err)
	}
	cp := newCompiler(libRules(t))
	c := ast.NewCompiler()
	mods := map[string]*ast.Module{}
	for _, r := range libRules(t) {
		mods[r.File] = r.module
	}
	if c.Compile(mods); c.Failed() {
		t.Fatal(c.Errors)
	}
	values := []string{`""`, `"/"`, `"a"`, `"/usr/bin/bash"`, `"bash/"`, `"//x//y"`, `"/bin/sh"`, `"sh"`, `"/usr/bin/zsh "`,
		`"__x64_sys_openat"`, `"__arm64_sys_dup3"`, `"sys_unshare"`, `"__x64_sys_sys_x"`, `"__X64_sys_a"`, `"__x64_sys_"`,
		`"ksys_read"`, `"__x_sys_"`, `"___x64_sys_openat"`, `"__x64_sys_openat_sys_x"`, `7`, `null`, `true`, `["a"]`, `{"a": 1}`,
		`{"pod": {"namespace": "n"}}`, `{"pod": {"namespace": false}}`, `{"pod": {"namespace": ""}}`, `{"pod": {}}`,
		`{"ns": {"pid": {"is_host": false}}}`, `{"ns": {"pid": {"is_host": true}}}`, `{"ns": {"pid": {"is_host": 0}}}`,
		`{"ns": {"pid": {}}}`, `{"ns": {"pid": false}}`, `{"ns": [false]}`, `{"pod": {"namespace": ""}, "ns": {"pid": {"is_host": false}}}`,
		`{"args": [{"label": "x", "int_arg": 1}, {"label": "y"}]}`, `{"args": {"a": {"label": "x"}}}`,
		`{"args": [{"label": "x", "v": 1}, {"label": "x", "v": 1}]}`, `{"args": "x"}`, `{"args": [1, {"label": 2}]}`}
	for _, fn := range []string{"basename", "syscall_name", "is_shell", "in_container", "arg"} {
		for _, x := range values {
			call := fmt.Sprintf("%s.%s(input.x)", libPackage, fn)
			operands := []*ast.Term{ast.MustParseTerm(x)}
			if fn == "arg" {
				call = fmt.Sprintf("%s.arg(input.x, \"x\")", libPackage)
				operands = append(operands, ast.StringTerm("x"))
			}
			q, err := prepare(c, set.store, "r0 = "+call)
			if err != nil {
				t.Fatal(err)
			}
			want, err := q.eval(context.Background(), ast.MustParseTerm(`{"x": `+x+`}`).Value)
			if err != nil {
				t.Fatalf("%s: %v", call, err)
			}
			var args []term
			for _, o := range operands {
				args = append(args, constTerm(constVal(o.Value)))
			}
			native, ok := cp.nativeLib(fn, args)
			if !ok {
				t.Fatalf("%s is not computed in Go", fn)
			}
			ec := newEctx(nil)
			got := native(ec)
			if want == nil != !got.defined() || want != nil && !equal(got, fromAST(want)) {
				t.Errorf("%s = %v in Go (left to Rego: %v), %v in Rego", call, toAST(got, nil), ec.punted, want)
			}
		}
	}
}
