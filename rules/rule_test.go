package rules

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// rule builds a rule module: package vigil.rules.NAME, the metadata
// object meta (Rego text) and body.
func rule(name, meta, body string) string {
	return fmt.Sprintf("package vigil.rules.%s\n\nmetadata := %s\n\n%s\n", name, meta, body)
}

const goodMeta = `{"id": "T-1", "name": "n", "description": "d", "severity": "low", "mitre": {"tactic": "TA0002 Execution", "technique": "T1059"}, "events": ["process_exec"]}`

const goodAlert = `alert contains "x" if input.process_exec.process.binary == "/bin/x"`

func TestParseRuleErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"syntax", "package vigil.rules.a\n\nalert contains x if {\n", "r.rego:4: unexpected eof token"},
		{"package", "package other.a\n\n" + goodAlert + "\n", "r.rego:1: package other.a: a rule's package is vigil.rules.NAME"},
		{"no metadata", "package vigil.rules.a\n\n" + goodAlert + "\n", "r.rego:1: no metadata: define metadata := "},
		{"no alert", "package vigil.rules.a\n\nmetadata := " + goodMeta + "\n", "r.rego:1: no alert rule"},
		{"alert not a set", rule("a", goodMeta, `alert := "x"`), "r.rego:5: alert must be a partial set rule"},
		{"computed metadata", rule("a", `{"id": input.x}`, goodAlert), "r.rego:3: metadata: must be a constant object"},
		{"unknown field", rule("a", strings.Replace(goodMeta, `"name"`, `"title": "t", "name"`, 1), goodAlert), `r.rego:3: metadata: unknown field "title"`},
		{"bad id", rule("a", strings.Replace(goodMeta, `"T-1"`, `"no spaces"`, 1), goodAlert), `r.rego:3: metadata: id "no spaces": want letters`},
		{"no name", rule("a", strings.Replace(goodMeta, `"name": "n"`, `"name": ""`, 1), goodAlert), "r.rego:3: metadata: name is required"},
		{"severity", rule("a", strings.Replace(goodMeta, `"low"`, `"urgent"`, 1), goodAlert), `r.rego:3: metadata: severity "urgent": want one of info, low, medium, high, critical`},
		{"no mitre", rule("a", strings.Replace(goodMeta, `"mitre": {"tactic": "TA0002 Execution", "technique": "T1059"}, `, "", 1), goodAlert), "r.rego:3: metadata: mitre: want"},
		{"no events", rule("a", strings.Replace(goodMeta, `["process_exec"]`, `[]`, 1), goodAlert), "r.rego:3: metadata: events: list the event types"},
		{"unknown event", rule("a", strings.Replace(goodMeta, `"process_exec"`, `"process_exce"`, 1), goodAlert), `r.rego:3: metadata: events: "process_exce" is not an event type a rule can consume`},
		{"alert events", rule("a", strings.Replace(goodMeta, `"process_exec"`, `"alert"`, 1), goodAlert), `r.rego:3: metadata: events: "alert" is not an event type a rule can consume`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRule("r.rego", tc.src)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("ParseRule: %v\nwant an error starting with %q", err, tc.want)
			}
		})
	}
}

func TestParseRule(t *testing.T) {
	meta := `{"id": "VGL-X-1", "name": "Name", "description": "What", "severity": "high",
	"mitre": {"tactic": "TA0005 Defense Evasion", "technique": "T1070"}, "tags": ["a", "b"], "events": ["process_exec", "flow", "flow"]}`
	r, err := ParseRule("x.rego", rule("x_1", meta, goodAlert))
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%s|%s|%s|%s|%s|%s|%v|%v|%s", r.ID, r.Name, r.Description, r.Severity, r.Tactic, r.Technique, r.Tags, r.Events, r.Package)
	want := "VGL-X-1|Name|What|high|TA0005 Defense Evasion|T1070|[a b]|[process_exec flow]|data.vigil.rules.x_1"
	if got != want {
		t.Errorf("rule = %s\nwant   %s", got, want)
	}
}

func mustRule(t testing.TB, file, src string) *Rule {
	t.Helper()
	r, err := ParseRule(file, src)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCompileErrors(t *testing.T) {
	a := mustRule(t, "a.rego", rule("a", goodMeta, goodAlert))
	sameID := mustRule(t, "b.rego", rule("b", goodMeta, goodAlert))
	samePkg := mustRule(t, "c.rego", rule("a", strings.Replace(goodMeta, "T-1", "T-2", 1), goodAlert))
	undefined := mustRule(t, "d.rego", rule("d", strings.Replace(goodMeta, "T-1", "T-4", 1), "alert contains x if {\n\tx := nosuchfunction(input)\n}"))
	for _, tc := range []struct {
		name  string
		rules []*Rule
		want  string
	}{
		{"duplicate id", []*Rule{a, sameID}, "b.rego: rule id T-1 is also the id of a.rego"},
		{"duplicate package", []*Rule{a, samePkg}, "c.rego:1: package vigil.rules.a is also the package of a.rego"},
		{"undefined function", []*Rule{a, undefined}, "d.rego:6: undefined function nosuchfunction"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(context.Background(), tc.rules)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Compile: %v\nwant %q", err, tc.want)
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Errorf("Compile error %T is not Errors", err)
			}
		})
	}
}

// A rule that fails on an event is reported; the other rules of the same
// event type still raise their alerts.
func TestEvalIsolatesFailingRule(t *testing.T) {
	good := mustRule(t, "good.rego", rule("good", goodMeta, `alert contains "good fired" if input.process_exec.process.binary == "/bin/x"`))
	bad := mustRule(t, "bad.rego", rule("bad", strings.Replace(goodMeta, "T-1", "T-BAD", 1), `
n := 1 if input.process_exec
n := 2 if input.process_exec

alert contains "never" if n == 1`))
	set, err := Compile(context.Background(), []*Rule{good, bad})
	if err != nil {
		t.Fatal(err)
	}
	in, typ, err := ParseInput([]byte(`{"process_exec":{"process":{"binary":"/bin/x"}},"time":"2026-11-22T00:00:00Z"}`))
	if err != nil {
		t.Fatal(err)
	}
	m, errs := set.Eval(context.Background(), typ, in)
	if len(m) != 1 || m[0].Rule.ID != "T-1" || m[0].Description != "good fired" {
		t.Errorf("matches = %+v, want the good rule's alert", m)
	}
	if len(errs) != 1 || errs[0].Rule.ID != "T-BAD" {
		t.Errorf("errors = %+v, want one for T-BAD", errs)
	}
}

// Rules are evaluated for the types they consume only.
func TestEvalByType(t *testing.T) {
	exec := mustRule(t, "e.rego", rule("e", goodMeta, `alert contains "exec" if input.process_exec`))
	flow := mustRule(t, "f.rego", rule("f", strings.NewReplacer("T-1", "T-2", "process_exec", "flow").Replace(goodMeta), `alert contains "flow" if true`))
	set, err := Compile(context.Background(), []*Rule{exec, flow})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range []string{`{"process_exec":{}}`, `{"flow":{}}`, `{"process_exit":{}}`, `{"alert":{}}`} {
		in, typ, err := ParseInput([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		m, _ := set.Eval(context.Background(), typ, in)
		for _, x := range m {
			got = append(got, x.Description)
		}
		if set.Wants(typ) != (len(m) > 0) {
			t.Errorf("Wants(%v) = %v with %d alerts", typ, set.Wants(typ), len(m))
		}
	}
	if diff := cmp.Diff([]string{"exec", "flow"}, got); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
}
