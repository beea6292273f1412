package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files of vigil rules test")

const recordedEvents = "../../rules/testdata/recorded.jsonl"

// vigil rules test prints, for the recorded events of the default rules'
// privileged test, the alerts the agent raised; with a user rule and an
// exceptions file, those too.
func TestRulesTestGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"defaults", []string{"rules", "test", "--events", recordedEvents}},
		{"user-rule-and-exceptions", []string{"rules", "test", "testdata/rules/user.rego", "--exceptions", "testdata/rules/exceptions.yaml", "--events", recordedEvents}},
		{"user-rule-only", []string{"rules", "test", "--no-default-rules", "testdata/rules/user.rego", "--events", recordedEvents}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runVigil(t, nil, tc.args...)
			if res.Code != 0 {
				t.Fatalf("exit %d: %s", res.Code, res.Stderr)
			}
			golden := filepath.Join("testdata", "rules", tc.name+".golden")
			if *updateGolden {
				if err := os.WriteFile(golden, []byte(res.Stdout), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), res.Stdout); diff != "" {
				t.Errorf("output differs from %s (go test ./cmd/vigil -run RulesTest -update):\n%s", golden, diff)
			}
		})
	}
}

func TestRulesTestErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"broken rule", []string{"rules", "test", "testdata/rules/broken.rego", "--events", recordedEvents}, 1,
			`testdata/rules/broken.rego:3: metadata: severity "urgent": want one of info, low, medium, high, critical`},
		{"bad events", []string{"rules", "test", "--events", "testdata/rules/bad-events.jsonl"}, 2,
			"testdata/rules/bad-events.jsonl:2: "},
		{"no events flag", []string{"rules", "test"}, 2, "--events: give the file of recorded events"},
		{"missing rules", []string{"rules", "test", "nonexistent.rego", "--events", recordedEvents}, 1, "rule files: stat nonexistent.rego: no such file or directory"},
		{"no rules", []string{"rules", "list", "--no-default-rules"}, 2, "no rules: give rule files or directories"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runVigil(t, nil, tc.args...)
			if res.Code != tc.code || !strings.Contains(res.Stderr, tc.want) {
				t.Errorf("exit %d, stderr %q\nwant exit %d and %q", res.Code, res.Stderr, tc.code, tc.want)
			}
		})
	}
}

func TestRulesList(t *testing.T) {
	res := runVigil(t, nil, "rules", "list", "testdata/rules/user.rego")
	if res.Code != 0 {
		t.Fatalf("exit %d: %s", res.Code, res.Stderr)
	}
	for _, want := range []string{"ID ", "VGL-EXEC-003", "Reverse shell", "USER-001", "testdata/rules/user.rego"} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("vigil rules list lacks %q:\n%s", want, res.Stdout)
		}
	}
}
