package rules

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/exporter/encode"
)

// defaultEngine is an engine with the default rules whose queue is
// drained by the test (Run is not started).
func defaultEngine(tb testing.TB, out Sink) *Engine {
	tb.Helper()
	cfg := DefaultConfig()
	cfg.NodeName = "test-node"
	e, err := New(cfg, quietLog(), nil, out)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// drain evaluates what Submit queued.
func (e *Engine) drain(ctx context.Context) {
	for len(e.q) > 0 {
		e.evaluate(ctx, <-e.q)
	}
}

// The agent's path (Submit, then evaluation of the typed input) raises
// exactly the alerts `vigil rules test` raises on the events' exported
// JSON, with the event and its process in each alert; and only events
// some rule alerts on are queued.
func TestEngineAlertsAsOffline(t *testing.T) {
	ctx := context.Background()
	lines := append(recorded(t), ordinary(t)...)
	evs, nodes := recordedEvents(t, lines)
	o := NewOffline(loadDefaults(t), nil)
	out := &sink{}
	e := defaultEngine(t, out)
	var want, got []string
	queued := 0
	for i, ev := range evs {
		e.cfg.NodeName = nodes[i]
		res, err := o.Eval(ctx, lines[i])
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range res.Alerts {
			want = append(want, fmt.Sprintf("%d %s %s", i, a.Alert.Rule.ID, a.Alert.Description))
		}
		n := len(out.alerts)
		e.Submit(ev)
		queued += len(e.q)
		if len(res.Alerts) > 0 && len(e.q) == 0 {
			t.Errorf("an event raising %d alerts was not queued: %s", len(res.Alerts), lines[i])
		}
		e.drain(ctx)
		for _, a := range out.alerts[n:] {
			got = append(got, fmt.Sprintf("%d %s %s", i, a.Alert.Rule.ID, a.Alert.Description))
			if a.Alert.Event == nil || a.Alert.Event.Process != ev.Process || a.Process != ev.Process || a.Parent != ev.Parent {
				t.Errorf("alert %s does not carry its event and processes", a.Alert.Rule.ID)
			}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("alerts (-offline +engine):\n%s", diff)
	}
	if len(want) < 16 {
		t.Errorf("%d alerts: the recorded events should raise every rule's", len(want))
	}
	if queued > len(want)+len(evs)/10 {
		t.Errorf("%d of %d events queued for %d alerts: the guards let too much through", queued, len(evs), len(want))
	}
	if got := counterValue(e.m.ruledOut); int(got) != len(evs)-queued {
		t.Errorf("vigil_rules_events_ruled_out_total = %v, want %d", got, len(evs)-queued)
	}
}

// Submit costs no allocation for an event no rule can alert on: the
// guards read the event in place, and nothing is copied or queued.
func TestSubmitRuledOutAllocatesNothing(t *testing.T) {
	e := defaultEngine(t, &sink{})
	evs, _ := recordedEvents(t, ordinary(t))
	var quiet []*event.Event
	for _, ev := range evs {
		if !e.cur.Load().set.MayAlert(ev, e.cfg.NodeName) {
			quiet = append(quiet, ev)
		}
	}
	if len(quiet) < len(evs)*9/10 {
		t.Fatalf("only %d of %d ordinary events are ruled out", len(quiet), len(evs))
	}
	// Each event on its own: an average over several would round an
	// allocation made for one event in ten down to none.
	for _, ev := range quiet {
		if allocs := testing.AllocsPerRun(20, func() { e.Submit(ev) }); allocs != 0 {
			t.Errorf("Submit of an event no rule alerts on: %v allocations, want 0: %s", allocs, encode.AppendJSON(nil, ev, "", nil))
		}
	}
	if len(e.q) != 0 {
		t.Errorf("%d ruled-out events queued", len(e.q))
	}
}

// A rule that cannot be decided in Go on an event (two arguments of one
// label make arg() a conflict) is evaluated in Rego, which reports the
// error; the rule's other alerts, and the other rules', still come.
func TestEngineLeavesConflictsToRego(t *testing.T) {
	ctx := context.Background()
	out := &sink{}
	e := defaultEngine(t, out)
	proc := &event.Process{Binary: "/usr/bin/cat", PID: 7}
	ev := &event.Event{Type: event.TypeProcessKprobe, Process: proc, Kprobe: &event.Kprobe{
		PolicyName: "default-file-access", FunctionName: "__x64_sys_openat",
		Args: []event.Arg{{Kind: event.ArgString, Label: "filename", Str: "/etc/shadow"},
			{Kind: event.ArgInt, Label: "flags", Int: 1}, {Kind: event.ArgString, Label: "filename", Str: "/etc/passwd"}},
	}}
	e.Submit(ev)
	e.drain(ctx)
	if len(out.alerts) != 0 {
		t.Errorf("alerts %v, want none (the rules reading filename fail)", out.descriptions())
	}
	for _, id := range []string{"VGL-CRED-001", "VGL-PERS-001"} {
		if got := counterValue(e.m.evalErrors.WithLabelValues(id)); got != 1 {
			t.Errorf("vigil_rules_eval_errors_total{rule=%s} = %v, want 1", id, got)
		}
		if got := counterValue(e.m.rego.WithLabelValues(id)); got != 1 {
			t.Errorf("vigil_rules_rego_evaluations_total{rule=%s} = %v, want 1", id, got)
		}
	}
	// One filename: Go decides, and alerts.
	ev.Kprobe.Args = ev.Kprobe.Args[:2]
	e.Submit(ev)
	e.drain(ctx)
	if d := out.descriptions(); !slices.Equal(d, []string{"/usr/bin/cat opened /etc/shadow", "/usr/bin/cat opened /etc/shadow for writing"}) {
		t.Errorf("alerts %q", d)
	}
	if got := counterValue(e.m.rego.WithLabelValues("VGL-CRED-001")); got != 1 {
		t.Errorf("vigil_rules_rego_evaluations_total{rule=VGL-CRED-001} = %v after an event Go decides, want 1", got)
	}
}
