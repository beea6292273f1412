package rules

import (
	"context"
	"testing"
)

func TestDefaultRulesCompile(t *testing.T) {
	if n := len(loadDefaults(t).Rules()); n < 16 {
		t.Errorf("%d default rules, want at least 16", n)
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
		case "VGL-EXEC-004":
			// The test's helpers ran from go test's binary in /tmp too.
			if got[r.ID] < 1 {
				t.Errorf("%s raised no alert on the recorded events", r.ID)
			}
			continue
		}
		if got[r.ID] != want {
			t.Errorf("%s raised %d alerts on the recorded events, want %d", r.ID, got[r.ID], want)
		}
	}
}
