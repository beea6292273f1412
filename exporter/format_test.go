package exporter

import (
	"bufio"
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/exporter/tetragonschema"
)

// In the tetragon format every line a sink receives parses strictly with
// Tetragon's schema; flows, alerts and losses to the filters are counted
// and announced instead of written, losses become rate_limit_info, and
// in-process event subscribers (the flow API) still see everything.
func TestTetragonFormat(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	cfg.NodeName = "n"
	cfg.Format = "tetragon"
	cfg.Denylist = `{"binary_regex":["^/bin/ls$"]}`
	log, hook := test.NewNullLogger()
	e, err := New(cfg, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	var note string
	for _, en := range hook.AllEntries() {
		if en.Level == logrus.InfoLevel && strings.Contains(en.Message, "vigil_export_format_skipped_total") {
			note = en.Message
		}
	}
	for _, want := range []string{"flow", "alert", "lost_events"} {
		if !strings.Contains(note, want) {
			t.Errorf("start-up note %q does not name %s", note, want)
		}
	}
	s := &memSink{name: "mem"}
	e.sinks, e.queues = nil, nil
	e.addSink(s)
	evs := e.SubscribeEvents(EventSubscribeOptions{Name: "test", Buffer: 16})

	p := proc(2, "/bin/true", "-x", nil)
	p.CgroupID = 7
	p.BinaryProperties.UpperLayer = true
	e.Export(execEvent(proc(1, "/bin/ls", "", nil))) // filtered
	e.Export(execEvent(p))
	e.Export(&event.Event{Type: event.TypeProcessKprobe, Time: t0, Process: p, Kprobe: &event.Kprobe{
		FunctionName: "__x64_sys_ptrace", PolicyName: "p", Action: "KPROBE_ACTION_SIGKILL", Signal: 9,
		Mechanism: "kprobe", Monitor: true, ActionNote: "monitor mode: the action was not taken",
		Args: []event.Arg{{Kind: event.ArgLong, Int: 16, Label: "request", Truncated: true}}}})
	e.Export(&event.Event{Type: event.TypeFlow, Time: t0, Process: p, Flow: &event.Flow{Verdict: event.VerdictDropped}})
	e.Export(&event.Event{Type: event.TypeAlert, Time: t0, Alert: &event.Alert{Rule: event.Rule{ID: "R"}}})
	e.ReportLost(ReasonRingbufFull, 5)
	e.reportLosses()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e.Run(ctx) // delivers what is queued

	schema, err := tetragonschema.Load()
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	data := append([]byte(nil), s.buf.Bytes()...)
	s.mu.Unlock()
	var kinds []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		kind, err := schema.Check(sc.Bytes())
		if err != nil {
			t.Errorf("strict Tetragon parse: %v\n%s", err, sc.Bytes())
		}
		kinds = append(kinds, kind)
	}
	if diff := cmp.Diff([]string{"process_exec", "process_kprobe", "rate_limit_info"}, kinds); diff != "" {
		t.Errorf("lines written (-want +got):\n%s", diff)
	}
	for _, o := range s.objects(t) {
		switch key(o) {
		case "process_kprobe":
			if got := get(o, "process_kprobe.action"); got != "KPROBE_ACTION_POST" {
				t.Errorf("monitor-mode action %v, want KPROBE_ACTION_POST (the action was not taken)", got)
			}
			if got := get(o, "process_kprobe.args"); cmp.Diff([]any{map[string]any{"long_arg": "16", "label": "request"}}, got) != "" {
				t.Errorf("args %v, want long_arg 16 without Vigil's truncated", got)
			}
		case "rate_limit_info":
			if got := get(o, "rate_limit_info.number_of_dropped_process_events"); got != "5" {
				t.Errorf("rate_limit_info counts %v, want the 5 ring buffer losses", got)
			}
		}
	}
	got := gather(t, reg)
	for series, want := range map[string]float64{
		`vigil_export_format_skipped_total{format="tetragon",type="flow"}`:        1,
		`vigil_export_format_skipped_total{format="tetragon",type="alert"}`:       1,
		`vigil_export_format_skipped_total{format="tetragon",type="lost_events"}`: 1,
	} {
		if v, ok := got[series]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", series, v, ok, want)
		}
	}
	var types []string
	for len(evs.C) > 0 {
		types = append(types, (<-evs.C).Type.String())
	}
	if !strings.Contains(strings.Join(types, " "), "flow") {
		t.Errorf("event subscriber got %v, want the flow too", types)
	}
}

func TestFormatConfig(t *testing.T) {
	for _, tc := range []struct {
		change func(*Config)
		err    string
	}{
		{func(c *Config) { c.Format = "protobuf" }, `--export-format: "protobuf": want vigil or tetragon`},
		{func(c *Config) { c.Format = "tetragon"; c.ArgumentsArray = true }, `--export-arguments-array: Tetragon's schema has no arguments_list`},
		{func(c *Config) { c.Format = "tetragon" }, ""},
	} {
		c := DefaultConfig()
		tc.change(&c)
		err := c.Validate()
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("Validate: %v, want %q", err, tc.err)
		}
	}
}
