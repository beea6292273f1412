package rules

import (
	"context"
	"fmt"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// A guard never hides an alert: on every recorded event (the behaviours,
// their benign counterparts, ordinary activity), a default rule whose guard
// fails raises nothing when its query runs anyway.
func TestGuardsNeverHideAnAlert(t *testing.T) {
	ctx := context.Background()
	set, _, err := Load(ctx, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	skipped, alerts := 0, 0
	for _, l := range append(recorded(t), ordinary(t)...) {
		in, typ, err := ParseInput(l)
		if err != nil {
			t.Fatal(err)
		}
		q := set.byType[typ]
		if q == nil {
			continue
		}
		gin := set.paths.input(in.(ast.Object))
		for i, r := range q.rules {
			pass := q.guards[i].pass(gin)
			rs, err := q.single[i].Eval(ctx, rego.EvalParsedInput(in))
			if err != nil {
				t.Fatal(err)
			}
			raised := len(rs) > 0 && len(rs[0].Bindings["r0"].([]any)) > 0
			if raised {
				alerts++
			}
			if !pass {
				skipped++
				if raised {
					t.Errorf("%s: guard fails on an event the rule alerts on: %s", r.ID, l)
				}
			}
		}
	}
	if alerts == 0 || skipped == 0 {
		t.Errorf("%d alerts, %d rule evaluations skipped: the recorded events exercise neither", alerts, skipped)
	}
}

// Every body of every default rule has a guard, so that events no rule is
// about stay out of Rego (the engine's speed depends on it).
func TestDefaultRulesAreGuarded(t *testing.T) {
	set, _, err := Load(context.Background(), DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range set.byType {
		for i, r := range q.rules {
			for j, b := range q.guards[i].bodies {
				if len(b) == 0 {
					t.Errorf("%s: alert body %d has no condition a guard understands", r.ID, j+1)
				}
			}
		}
	}
}

// Ordinary activity on a host raises no alert.
func TestOrdinaryActivityRaisesNoAlert(t *testing.T) {
	set, _, err := Load(context.Background(), DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	o := NewOffline(set, nil)
	for _, l := range ordinary(t) {
		res, err := o.Eval(context.Background(), l)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range res.Alerts {
			t.Errorf("%s: %s on %s", a.Alert.Rule.ID, a.Alert.Description, l)
		}
	}
}

func TestGuard(t *testing.T) {
	lib, err := defaultSources(false)
	if err != nil {
		t.Fatal(err)
	}
	exec := func(binary, args string, pod string) string {
		p := ""
		if pod != "" {
			p = fmt.Sprintf(`,"pod":{"namespace":%q,"name":"p"}`, pod)
		}
		return fmt.Sprintf(`{"process_exec":{"process":{"binary":%q,"arguments":%q%s}}}`, binary, args, p)
	}
	kprobe := `{"process_kprobe":{"policy_name":"pol","function_name":"__x64_sys_openat","process":{"binary":"/usr/bin/cat"},` +
		`"args":[{"label":"filename","string_arg":"/etc/shadow"},{"label":"flags","int_arg":0}]}}`
	for _, tc := range []struct {
		name, head, body string
		// in maps inputs to whether the guard lets them through
		in map[string]bool
	}{
		{"equality through an alias", "", `p := input.process_exec.process
			p.binary == "/bin/x"`,
			map[string]bool{exec("/bin/x", "", ""): true, exec("/bin/y", "", ""): false, `{"process_exec":{}}`: false}},
		{"constant on the left", "", `"/bin/x" = input.process_exec.process.binary`,
			map[string]bool{exec("/bin/x", "", ""): true, exec("/bin/y", "", ""): false}},
		{"basename in a module constant", `names := {"nc", "socat"}`, `events.basename(input.process_exec.process.binary) in names`,
			map[string]bool{exec("/usr/bin/nc", "", ""): true, exec("nc", "", ""): true, exec("/usr/bin/ncat", "", ""): false}},
		{"library constant", "", `events.basename(input.process_exec.process.binary) in events.netcats`,
			map[string]bool{exec("/bin/socat", "", ""): true, exec("/bin/cat", "", ""): false}},
		{"is_shell and in_container", "", `p := input.process_exec.process
			events.is_shell(p.binary)
			events.in_container(p)`,
			map[string]bool{exec("/bin/bash", "", "ns"): true, exec("/bin/bash", "", ""): false, exec("/bin/ls", "", "ns"): false}},
		{"startswith over some", `dirs := ["/tmp/", "/dev/shm/"]`, `some d in dirs
			startswith(input.process_exec.process.binary, d)`,
			map[string]bool{exec("/tmp/x", "", ""): true, exec("/dev/shm/x", "", ""): true, exec("/usr/bin/x", "", ""): false}},
		{"policy event argument", "", `ev := input.process_kprobe
			ev.policy_name == "pol"
			events.syscall_name(ev.function_name) == "openat"
			startswith(events.arg(ev, "filename").string_arg, "/etc/")`,
			map[string]bool{kprobe: true, `{"process_kprobe":{"policy_name":"other"}}`: false,
				`{"process_kprobe":{"policy_name":"pol","function_name":"__x64_sys_openat","args":[]}}`: false}},
		// What a guard does not understand lets everything through.
		{"negation", "", `not input.process_exec.process.binary == "/bin/x"`,
			map[string]bool{exec("/bin/x", "", ""): true}},
		{"unknown function", "", `lower(input.process_exec.process.binary) == "/bin/x"`,
			map[string]bool{exec("/bin/y", "", ""): true}},
		{"local shadowing a constant", `names := {"nc"}`, `some names
			names = "zz"
			events.basename(input.process_exec.process.binary) in names`,
			map[string]bool{exec("/bin/y", "", ""): true}},
		{"library function on a number", "", `events.basename(input.process_exec.process.binary) == "x"`,
			map[string]bool{`{"process_exec":{"process":{"binary":7}}}`: true}},
		{"either of two bodies", "", `input.process_exec.process.binary == "/bin/x"
		}

		alert contains "y" if {
			input.process_exec.process.binary == "/bin/y"`,
			map[string]bool{exec("/bin/x", "", ""): true, exec("/bin/y", "", ""): true, exec("/bin/z", "", ""): false}},
		{"a body without a guard", "", `input.process_exec.process.binary == "/bin/x"
		}

		alert contains "y" if {
			lower(input.process_exec.process.binary) == "/bin/y"`,
			map[string]bool{exec("/bin/z", "", ""): true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := fmt.Sprintf("package vigil.rules.g\n\nimport data.vigil.lib.events\n\nmetadata := %s\n\n%s\n\nalert contains \"x\" if {\n%s\n}\n", goodMeta, tc.head, tc.body)
			rules := []*Rule{mustRule(t, "g.rego", src)}
			for _, s := range lib {
				rules = append(rules, mustRule(t, s.file, s.text))
			}
			set, err := Compile(context.Background(), rules)
			if err != nil {
				t.Fatal(err)
			}
			q := set.byType[rules[0].Events[0]]
			for in, want := range tc.in {
				v, _, err := ParseInput([]byte(in))
				if err != nil {
					t.Fatal(err)
				}
				if got := q.guards[0].pass(set.paths.input(v.(ast.Object))); got != want {
					t.Errorf("guard on %s: %v, want %v", in, got, want)
				}
			}
		})
	}
}

// The library functions guards compute in Go give what lib.rego's give.
func TestGuardLibraryFunctions(t *testing.T) {
	lib, err := defaultSources(false)
	if err != nil {
		t.Fatal(err)
	}
	mods := map[string]*ast.Module{}
	for _, s := range lib {
		mods[s.file] = mustRule(t, s.file, s.text).module
	}
	c := ast.NewCompiler()
	c.Compile(mods)
	if c.Failed() {
		t.Fatal(c.Errors)
	}
	for _, fn := range []string{"basename", "syscall_name"} {
		for _, s := range []string{"", "/", "a", "/usr/bin/bash", "bash/", "//x//y", "__x64_sys_openat", "__arm64_sys_dup3",
			"sys_unshare", "__x64_sys_sys_x", "__X64_sys_a", "__x64_sys_", "ksys_read"} {
			pq, err := prepare(context.Background(), c, fmt.Sprintf("r0 = %s.%s(%q)", libPackage, fn, s))
			if err != nil {
				t.Fatal(err)
			}
			rs, err := pq.Eval(context.Background())
			if err != nil || len(rs) != 1 {
				t.Fatalf("%s(%q): %v %v", fn, s, rs, err)
			}
			if got, want := libFuncs[fn](s), rs[0].Bindings["r0"]; got != want {
				t.Errorf("%s(%q) = %q in Go, %q in Rego", fn, s, got, want)
			}
		}
	}
}
