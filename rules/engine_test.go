package rules

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/event"
)

// sink collects alerts and losses.
type sink struct {
	mu     sync.Mutex
	alerts []*event.Event
	lost   map[string]uint64
}

func (s *sink) Export(ev *event.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.alerts = append(s.alerts, ev)
}

func (s *sink) ReportLost(reason string, n uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lost == nil {
		s.lost = map[string]uint64{}
	}
	s.lost[reason] += n
}

func (s *sink) descriptions() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, a := range s.alerts {
		out = append(out, a.Alert.Description)
	}
	return out
}

func quietLog() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func execEvent(binary string) *event.Event {
	return &event.Event{Type: event.TypeProcessExec, Time: time.Unix(1, 0),
		Process: &event.Process{PID: 42, Binary: binary}}
}

func writeRule(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(rule("user", goodMeta, body)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A user rule raises alerts carrying the rule and the event; rewriting it
// reloads it; a version that does not compile leaves the previous one
// running, and the next good version replaces it.
func TestEngineReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "user.rego")
	writeRule(t, path, `alert contains sprintf("v1 %s", [input.process_exec.process.binary]) if input.process_exec`)
	cfg := DefaultConfig()
	cfg.NoDefaultRules, cfg.Paths = true, []string{dir}
	out := &sink{}
	reg := prometheus.NewRegistry()
	e, err := New(cfg, quietLog(), reg, out)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() { cancel(); <-done }()

	e.Submit(execEvent("/bin/a"))
	waitUntil(t, "v1 alert", func() bool { return len(out.descriptions()) == 1 })
	a := out.alerts[0]
	if a.Type != event.TypeAlert || a.Alert.Rule.ID != "T-1" || a.Alert.Rule.Tactic != "TA0002 Execution" ||
		a.Alert.Event == nil || a.Alert.Event.Process.Binary != "/bin/a" || a.Process == nil || a.Process.PID != 42 {
		t.Errorf("alert = %+v", a)
	}
	if d := out.descriptions()[0]; d != "v1 /bin/a" {
		t.Errorf("description %q", d)
	}

	writeRule(t, path, `alert contains "v2" if input.process_exec`)
	waitUntil(t, "v2 alert", func() bool {
		e.Submit(execEvent("/bin/b"))
		time.Sleep(20 * time.Millisecond)
		d := out.descriptions()
		return d[len(d)-1] == "v2"
	})

	// Broken: v2 stays.
	writeRule(t, path, `alert contains "v3" if {`)
	waitUntil(t, "the refusal counted", func() bool { return counterValue(e.m.fileErrors) >= 1 })
	n := len(out.descriptions())
	e.Submit(execEvent("/bin/c"))
	waitUntil(t, "an alert after the refusal", func() bool { return len(out.descriptions()) > n })
	if d := out.descriptions(); d[len(d)-1] != "v2" {
		t.Errorf("after a broken version: %q, want the previous version's v2", d[len(d)-1])
	}

	writeRule(t, path, `alert contains "v4" if input.process_exec`)
	waitUntil(t, "v4 alert", func() bool {
		e.Submit(execEvent("/bin/d"))
		time.Sleep(20 * time.Millisecond)
		d := out.descriptions()
		return d[len(d)-1] == "v4"
	})
	if got := counterValue(e.m.alerts.WithLabelValues("T-1", "low")); got < 4 {
		t.Errorf("vigil_rules_alerts_total = %v, want at least 4", got)
	}
	// Every evaluation is timed (the last one's time is observed just
	// after its alert is exported).
	waitUntil(t, "vigil_rules_eval_duration_seconds to count every evaluation", func() bool {
		var h dto.Metric
		if err := e.m.duration.Write(&h); err != nil {
			t.Fatal(err)
		}
		n := counterValue(e.m.evaluated)
		return n >= 4 && h.GetHistogram().GetSampleCount() >= uint64(n)
	})
}

// Submit never blocks: what the queue cannot hold is dropped, counted and
// reported as lost; events no rule consumes are not queued at all.
func TestEngineQueueFull(t *testing.T) {
	dir := t.TempDir()
	writeRule(t, filepath.Join(dir, "r.rego"), `alert contains "x" if input.process_exec`)
	cfg := DefaultConfig()
	cfg.NoDefaultRules, cfg.Paths, cfg.QueueSize = true, []string{dir}, 2
	out := &sink{}
	e, err := New(cfg, quietLog(), nil, out)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		e.Submit(execEvent("/bin/x"))
	}
	e.Submit(&event.Event{Type: event.TypeFlow, Flow: &event.Flow{}})
	if got := out.lost[ReasonQueueFull]; got != 3 {
		t.Errorf("lost %d events for %s, want 3", got, ReasonQueueFull)
	}
	if got := counterValue(e.m.dropped); got != 3 {
		t.Errorf("vigil_rules_events_dropped_total = %v, want 3", got)
	}
	if len(e.q) != 2 {
		t.Errorf("%d events queued, want 2 (the flow is consumed by no rule)", len(e.q))
	}
}

func TestNewErrors(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Paths = []string{"/nonexistent/rules"}
	if _, err := New(cfg, quietLog(), nil, &sink{}); err == nil || !strings.Contains(err.Error(), "rule files: stat /nonexistent/rules") {
		t.Errorf("New with a missing path: %v", err)
	}
	cfg = DefaultConfig()
	cfg.QueueSize = 0
	if _, err := New(cfg, quietLog(), nil, &sink{}); err == nil || !strings.Contains(err.Error(), "--rules-queue-size") {
		t.Errorf("New with queue size 0: %v", err)
	}
	// A user rule that does not compile is left out at start; the others
	// run.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.rego"), []byte("package vigil.rules.bad\n\nalert contains x if {\n"), 0o644)
	cfg = DefaultConfig()
	cfg.Paths = []string{dir}
	e, err := New(cfg, quietLog(), nil, &sink{})
	if err != nil {
		t.Fatalf("New with a broken user rule: %v", err)
	}
	if n := len(e.Rules()); n < 16 {
		t.Errorf("%d rules in force, want the default ones", n)
	}
}

func TestExceptions(t *testing.T) {
	x, err := ParseExceptions("x.yaml", []byte(`apiVersion: vigil.dev/v1alpha1
kind: RuleExceptions
metadata: {name: platform}
spec:
  exceptions:
  - rules: [VGL-EXEC-001]
    namespaces: [kube-system]
  - rules: [VGL-EXEC-001]
    binaries: [/opt/tools/*]
    parentBinaries: [/usr/bin/tini]
  - rules: ["*"]
    images: [registry.example.com/debug/*]
`))
	if err != nil {
		t.Fatal(err)
	}
	r := &Rule{ID: "VGL-EXEC-001"}
	other := &Rule{ID: "VGL-OTHER"}
	ev := func(binary, parent, ns, image string) string {
		b, _ := json.Marshal(map[string]any{"process_exec": map[string]any{
			"process": map[string]any{"binary": binary, "pod": map[string]any{"namespace": ns, "container": map[string]any{"image": map[string]any{"name": image}}}},
			"parent":  map[string]any{"binary": parent},
		}})
		return string(b)
	}
	for _, tc := range []struct {
		rule  *Rule
		event string
		want  bool
	}{
		{r, ev("/bin/sh", "/usr/bin/runc", "kube-system", "busybox"), true},
		{r, ev("/bin/sh", "/usr/bin/runc", "shop", "busybox"), false},
		{r, ev("/opt/tools/debug", "/usr/bin/tini", "shop", "busybox"), true},
		{r, ev("/opt/tools/debug", "/bin/sh", "shop", "busybox"), false},
		{other, ev("/bin/sh", "", "kube-system", "busybox"), false},
		{other, ev("/bin/sh", "", "shop", "registry.example.com/debug/shell:1"), true},
	} {
		in, typ, err := ParseInput([]byte(tc.event))
		if err != nil {
			t.Fatal(err)
		}
		if got := x.Silences(tc.rule, SubjectOf(typ, in)); got != tc.want {
			t.Errorf("Silences(%s, %s) = %v, want %v", tc.rule.ID, tc.event, got, tc.want)
		}
	}
}

func TestExceptionsErrors(t *testing.T) {
	_, err := ParseExceptions("x.yaml", []byte(`apiVersion: vigil.dev/v1alpha1
kind: RuleExceptions
metadata: {name: platform}
spec:
  exceptions:
  - binaries: [/bin/sh]
  - rules: [A]
  - rules: [B]
    images: ["reg/*/x"]
---
apiVersion: vigil.dev/v1alpha1
kind: Workload
metadata: {name: w}
`))
	for _, want := range []string{
		"x.yaml:6: spec.exceptions[0].rules: required",
		"x.yaml:7: spec.exceptions[1]: silences nothing",
		`x.yaml:9: spec.exceptions[2].images[0]: "reg/*/x": want a value, or a prefix ending in a single *`,
		"x.yaml:12: kind: vigil.dev/v1alpha1 Workload is not a vigil.dev/v1alpha1 RuleExceptions document",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v\nlacks %q", err, want)
		}
	}
	_, err = ParseExceptions("y.yaml", []byte("apiVersion: vigil.dev/v1alpha1\nkind: RuleExceptions\nmetadata: {name: p}\nspec:\n  exceptions:\n  - rules: [A]\n    colour: red\n"))
	if err == nil || !strings.Contains(err.Error(), `y.yaml:7: spec.exceptions[0].colour: unknown field "colour"`) {
		t.Errorf("unknown field: %v", err)
	}
	// A repeated key would silently widen (or narrow) an exception.
	x, err := ParseExceptions("z.yaml", []byte("apiVersion: vigil.dev/v1alpha1\nkind: RuleExceptions\nmetadata: {name: p}\nspec:\n  exceptions:\n  - rules: [A]\n    binaries: [/usr/bin/curl]\n    binaries: [/]\n"))
	if x != nil || err == nil || err.Error() != "z.yaml:8: spec.exceptions[0].binaries: duplicate key (first at line 7)" {
		t.Errorf("duplicate key: %v, %v", x, err)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
