package rules

import (
	"context"
	"testing"
)

func TestDefaultRulesCompile(t *testing.T) {
	if n := len(loadDefaults(t).Rules()); n < 33 {
		t.Errorf("%d default rules, want at least 33", n)
	}
}

// Every alert body of every default rule is evaluated in Go: the attack
// mix's speed depends on it.
func TestDefaultRulesEvaluateInGo(t *testing.T) {
	set := loadDefaults(t)
	for _, tr := range set.byType {
		for i, r := range tr.rules {
			if !tr.plans[i].complete {
				t.Errorf("%s: an alert body has an expression the Go evaluator does not understand", r.ID)
			}
		}
	}
}

// Ordinary activity on a host raises no alert.
func TestOrdinaryActivityRaisesNoAlert(t *testing.T) {
	o := NewOffline(loadDefaults(t), nil)
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

// Each default rule raises its alert on the recorded behaviour and nothing
// on the rest: the recorded events hold each behaviour's benign counterpart.
func TestDefaultRulesOnRecordedEvents(t *testing.T) {
	set, _, err := Load(context.Background(), DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	o := NewOffline(set, nil)
	got := map[string]int{}
	for _, l := range recorded(t) {
		res, err := o.Eval(context.Background(), l)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Errors) > 0 {
			t.Errorf("rule errors: %v", res.Errors)
		}
		for _, a := range res.Alerts {
			got[a.Alert.Rule.ID]++
		}
	}
	for _, r := range set.Rules() {
		want := 1
		switch r.ID {
		case "VGL-PERS-002":
			want = 0 // the host the events were recorded on has no modules
		case "VGL-DEF-002":
			want = 2 // truncated, then removed
		case "VGL-EXEC-001":
			want = 2 // in a pod, then in a PID namespace of its own
		case "VGL-CRED-001":
			// Named, through a traversal, relative to the working
			// directory, a user's SSH key.
			want = 4
		case "VGL-EXEC-004":
			// A program, a script, a relative script (go test's binary
			// in /tmp is a build output).
			want = 3
		case "VGL-CRED-003", "VGL-IMP-001":
			want = 2 // hard and symbolic link; a pool, a miner's name
		case "VGL-PRIV-005":
			// In a PID namespace: made / private, then mounted; then
			// debugfs on the host.
			want = 3
		}
		if got[r.ID] != want {
			t.Errorf("%s raised %d alerts on the recorded events, want %d", r.ID, got[r.ID], want)
		}
	}
}
