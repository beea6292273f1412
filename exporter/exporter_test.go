package exporter

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/exporter/filter"
	"github.com/vigilsec/vigil/exporter/sink"
)

// memSink keeps what it is given. With gate set, each Write waits for a
// value on gate (or the end of the write context).
type memSink struct {
	name string
	gate chan struct{}
	mu   sync.Mutex
	buf  bytes.Buffer
}

func (s *memSink) Name() string { return s.name }
func (s *memSink) Write(ctx context.Context, lines []byte, count int) {
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(lines)
}
func (s *memSink) Run(ctx context.Context) error   { <-ctx.Done(); return nil }
func (s *memSink) Close(ctx context.Context) error { return nil }

var _ sink.Sink = (*memSink)(nil)

// objects returns the decoded lines received so far.
func (s *memSink) objects(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(s.buf.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("sink %s got invalid JSON %q: %v", s.name, sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// harness is an exporter whose sinks are memSinks, running until stop.
type harness struct {
	e     *Exporter
	sinks []*memSink
	done  chan error
	stop  context.CancelFunc
}

func start(t *testing.T, change func(*Config), sinks ...*memSink) *harness {
	t.Helper()
	cfg := DefaultConfig()
	cfg.NodeName = "node-a"
	cfg.LostEventsInterval = Duration(time.Hour) // reported at stop, or by the test
	if change != nil {
		change(&cfg)
	}
	e, err := New(cfg, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	e.sinks, e.queues = nil, nil // replace stdout by the test sinks
	if len(sinks) == 0 {
		sinks = []*memSink{{name: "mem"}}
	}
	for _, s := range sinks {
		e.addSink(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{e: e, sinks: sinks, done: make(chan error, 1), stop: cancel}
	go func() { h.done <- e.Run(ctx) }()
	t.Cleanup(func() { h.finish(t) })
	return h
}

// finish stops the exporter and waits for it; safe to call twice.
func (h *harness) finish(t *testing.T) {
	t.Helper()
	if h.stop == nil {
		return
	}
	h.stop()
	h.stop = nil
	select {
	case err := <-h.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
	}
}

func proc(pid uint32, binary, args string, pod *event.Pod) *event.Process {
	return &event.Process{ExecID: fmt.Sprintf("exec-%d", pid), PID: pid, TID: pid, Binary: binary, Arguments: args,
		Flags: event.FlagExecve, StartTime: time.Date(2026, 11, 22, 7, 0, 0, 0, time.UTC), Pod: pod}
}

var t0 = time.Date(2026, 11, 22, 7, 18, 21, 123456789, time.UTC)

func execEvent(p *event.Process) *event.Event {
	return &event.Event{Type: event.TypeProcessExec, Time: t0, Process: p}
}

func key(m map[string]any) string {
	for k := range m {
		if k != "node_name" && k != "time" {
			return k
		}
	}
	return ""
}

func get(m any, path string) any {
	for _, p := range strings.Split(path, ".") {
		mm, ok := m.(map[string]any)
		if !ok {
			return nil
		}
		m = mm[p]
	}
	return m
}

func TestExportToSinks(t *testing.T) {
	a, b := &memSink{name: "a"}, &memSink{name: "b"}
	h := start(t, nil, a, b)
	for i := 0; i < 100; i++ {
		h.e.Export(execEvent(proc(uint32(1000+i), "/bin/true", "", nil)))
	}
	h.finish(t)
	for _, s := range []*memSink{a, b} {
		objs := s.objects(t)
		if len(objs) != 100 {
			t.Fatalf("sink %s got %d events, want 100", s.name, len(objs))
		}
		for i, o := range objs {
			if pid := get(o, "process_exec.process.pid"); pid != float64(1000+i) {
				t.Fatalf("sink %s event %d has pid %v: out of order", s.name, i, pid)
			}
			if o["node_name"] != "node-a" || o["time"] != "2026-11-22T07:18:21.123456789Z" {
				t.Fatalf("envelope %v", o)
			}
		}
	}
}

// TestShaping runs a recorded session through allow and deny lists,
// redaction and a field mask.
func TestShaping(t *testing.T) {
	web := &event.Pod{Namespace: "shop", Name: "web-1", Labels: []event.Label{{Key: "app", Value: "web"}}}
	db := &event.Pod{Namespace: "db", Name: "postgres-0"}
	sh := proc(10, "/bin/sh", "-c psql", web)
	events := []*event.Event{
		execEvent(proc(11, "/usr/bin/psql", "-h db --password=hunter2 -U app", web)),
		execEvent(proc(12, "/usr/bin/curl", "-H 'Authorization: Bearer tok' https://x", web)),
		execEvent(proc(13, "/usr/lib/postgresql/bin/postgres", "-D /data", db)),
		execEvent(proc(14, "/usr/sbin/sshd", "-D", nil)),
		{Type: event.TypeProcessExit, Time: t0, Process: proc(11, "/usr/bin/psql", "-h db --password=hunter2 -U app", web), Parent: sh, Exit: &event.Exit{}},
		execEvent(proc(15, "/bin/ls", "-l", web)),
	}
	s := &memSink{name: "mem"}
	h := start(t, func(c *Config) {
		c.Allowlist = `{"namespace":["shop"]}` + "\n" + `{"namespace":[""],"binary_regex":["sshd"]}`
		c.Denylist = `{"binary_regex":["^/bin/ls$"]}`
		c.Redact = []string{`(?:--password)(?:\s+|=)(\S+)`, `Bearer (\S+?)'`}
		c.FieldExclude = []string{"process.flags", "process.start_time", "parent"}
	}, s)
	for _, ev := range events {
		h.e.Export(ev)
	}
	h.finish(t)
	var got []string
	for _, o := range s.objects(t) {
		k := key(o)
		if k == "lost_events" {
			got = append(got, fmt.Sprintf("lost %v %v", get(o, "lost_events.reason"), get(o, "lost_events.count")))
			continue
		}
		body := o[k].(map[string]any)
		got = append(got, fmt.Sprintf("%s %v %v parent=%v flags=%v", k, get(body, "process.binary"),
			get(body, "process.arguments"), body["parent"] != nil, get(body, "process.flags")))
	}
	want := []string{
		"process_exec /usr/bin/psql -h db --password=***** -U app parent=false flags=<nil>",
		"process_exec /usr/bin/curl -H 'Authorization: Bearer *****' https://x parent=false flags=<nil>",
		"process_exec /usr/sbin/sshd -D parent=false flags=<nil>",
		"process_exit /usr/bin/psql -h db --password=***** -U app parent=false flags=<nil>",
		"lost filtered 2",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestArgumentsArray checks --export-arguments-array: the array holds each
// argument, redacted like the string.
func TestArgumentsArray(t *testing.T) {
	s := &memSink{name: "mem"}
	h := start(t, func(c *Config) {
		c.ArgumentsArray = true
		c.Redact = []string{`(?:--password)(?:\s+|=)(\S+)`}
	}, s)
	h.e.Export(execEvent(proc(11, "/usr/bin/psql", `-h db --password=hunter2 "-c select 1"`, nil)))
	h.e.Export(execEvent(proc(12, "/bin/true", "", nil)))
	h.finish(t)
	objs := s.objects(t)
	if len(objs) != 2 {
		t.Fatalf("%d objects, want 2", len(objs))
	}
	want := []any{"-h", "db", "--password=*****", "-c select 1"}
	if diff := cmp.Diff(want, get(objs[0]["process_exec"], "process.arguments_list")); diff != "" {
		t.Errorf("arguments_list (-want +got):\n%s", diff)
	}
	if got := get(objs[1]["process_exec"], "process.arguments_list"); got != nil {
		t.Errorf("a process without arguments has arguments_list %v", got)
	}
}

func TestRateLimit(t *testing.T) {
	s := &memSink{name: "mem"}
	h := start(t, func(c *Config) { c.RateLimit = 60 }, s)
	clock := t0
	h.e.mu.Lock()
	h.e.now = func() time.Time { return clock }
	h.e.mu.Unlock()
	for i := 0; i < 100; i++ {
		h.e.Export(execEvent(proc(uint32(i), "/bin/true", "", nil)))
	}
	// Enforcement, dropped flows and alerts pass a spent limit.
	h.e.Export(&event.Event{Type: event.TypeProcessKprobe, Time: t0, Process: proc(7, "/bin/cat", "", nil),
		Kprobe: &event.Kprobe{FunctionName: "security_file_open", Action: "KPROBE_ACTION_SIGKILL"}})
	h.e.Export(&event.Event{Type: event.TypeProcessKprobe, Time: t0, Process: proc(7, "/bin/cat", "", nil),
		Kprobe: &event.Kprobe{FunctionName: "security_file_open", Action: "KPROBE_ACTION_POST"}})
	h.e.Export(&event.Event{Type: event.TypeFlow, Time: t0, Flow: &event.Flow{Verdict: event.VerdictDropped,
		Source: netip.MustParseAddr("10.0.0.1"), Destination: netip.MustParseAddr("10.0.0.2"), Protocol: event.ProtoTCP}})
	h.e.Export(&event.Event{Type: event.TypeAlert, Time: t0, Alert: &event.Alert{Rule: event.Rule{ID: "R1"}}})
	// Half a minute later, 30 more tokens.
	h.e.mu.Lock()
	clock = clock.Add(30 * time.Second)
	h.e.mu.Unlock()
	for i := 0; i < 40; i++ {
		h.e.Export(execEvent(proc(uint32(200+i), "/bin/true", "", nil)))
	}
	h.finish(t)
	counts := map[string]int{}
	var dropped any
	for _, o := range s.objects(t) {
		k := key(o)
		counts[k]++
		if k == "rate_limit_info" {
			dropped = get(o, "rate_limit_info.number_of_dropped_process_events")
		}
	}
	want := map[string]int{"process_exec": 90, "process_kprobe": 1, "flow": 1, "alert": 1, "rate_limit_info": 1}
	if diff := cmp.Diff(want, counts); diff != "" {
		t.Errorf("events by type (-want +got):\n%s", diff)
	}
	if dropped != "51" { // 40 + 1 POST kprobe + 10
		t.Errorf("rate_limit_info reports %v dropped, want \"51\"", dropped)
	}
}

// TestSlowSinkDoesNotBlock: one sink is stuck; Export stays fast, the other
// sink gets everything, the stuck one's losses are counted and reported.
func TestSlowSinkDoesNotBlock(t *testing.T) {
	stuck := &memSink{name: "stuck", gate: make(chan struct{})}
	fast := &memSink{name: "fast"}
	h := start(t, func(c *Config) { c.QueueMB = 1; c.FlushTimeout = Duration(200 * time.Millisecond) }, stuck, fast)
	const n = 20000
	start := time.Now()
	fastQueue := h.e.queues[1]
	for i := 0; i < n; i++ {
		h.e.Export(execEvent(proc(uint32(i), "/usr/bin/some-binary-with-a-long-name", strings.Repeat("arg ", 20), nil)))
		if i%1000 == 999 {
			// Pace the producer to what the fast sink takes, so that only
			// the stuck sink's queue overflows.
			for fastQueue.lines.Load() > 0 && time.Since(start) < 10*time.Second {
				time.Sleep(time.Millisecond)
			}
		}
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("exporting %d events took %v with a stuck sink", n, d)
	}
	lost := h.e.Lost(ReasonQueueFull)
	if lost == 0 || lost >= n {
		t.Fatalf("queue_full losses %d, want some but not all of %d", lost, n)
	}
	st := h.e.Status()
	if st[0].Name != "stuck" || st[0].QueuedBytes > 1<<20 || st[0].LostQueueFull != lost {
		t.Errorf("status %+v", st)
	}
	h.e.reportLosses()
	h.finish(t) // the stuck sink never finishes: the flush timeout ends it
	objs := fast.objects(t)
	execs := 0
	var lostRec map[string]any
	for _, o := range objs {
		switch key(o) {
		case "process_exec":
			execs++
		case "lost_events":
			if get(o, "lost_events.sink") == "stuck" && get(o, "lost_events.reason") == "queue_full" && lostRec == nil {
				lostRec = o
			}
		}
	}
	if execs != n {
		t.Errorf("fast sink got %d of %d events", execs, n)
	}
	if lostRec == nil || get(lostRec, "lost_events.count") != float64(lost) {
		t.Errorf("lost_events record %v, want count %d for sink stuck", lostRec, lost)
	}
}

func TestReportLostAndMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	cfg.NodeName = "n"
	cfg.Denylist = `{"binary_regex":["^/bin/ls$"]}`
	e, err := New(cfg, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	s := &memSink{name: "mem"}
	e.sinks, e.queues = nil, nil
	e.addSink(s)
	e.ReportLost(ReasonRingbufFull, 5)
	e.ReportLost(ReasonRingbufFull, 2)
	e.Export(execEvent(proc(1, "/bin/ls", "", nil)))
	e.Export(execEvent(proc(2, "/bin/true", "", nil)))
	e.Export(&event.Event{Type: event.TypeProcessLSM, Time: t0, Process: proc(3, "/bin/x", "", nil),
		Kprobe: &event.Kprobe{FunctionName: "file_open", PolicyName: "files"}})
	e.reportLosses()
	e.reportLosses() // nothing new: no second record

	if _, err := New(cfg, nil, reg); err == nil || !strings.Contains(err.Error(), "one exporter per registry") {
		t.Errorf("second exporter on the same registry: %v", err)
	}
	got := gather(t, reg)
	for _, m := range []struct {
		series string
		want   float64
	}{
		{`vigil_events_lost_total{reason="ringbuf_full",sink=""}`, 7},
		{`vigil_events_lost_total{reason="filtered",sink=""}`, 1},
		{`vigil_events_lost_total{reason="rate_limited",sink=""}`, 0},
		{`vigil_events_total{policy="",type="process_exec"}`, 1},
		{`vigil_events_total{policy="files",type="process_lsm"}`, 1},
		{`vigil_events_total{policy="",type="lost_events"}`, 2},
		{`vigil_export_queue_lines{sink="stdout"}`, 0},
	} {
		if v, ok := got[m.series]; !ok || v != m.want {
			t.Errorf("%s = %v (present %v), want %v", m.series, v, ok, m.want)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e.Run(ctx)
	var records []string
	for _, o := range s.objects(t) {
		if key(o) == "lost_events" {
			records = append(records, fmt.Sprintf("%v:%v", get(o, "lost_events.reason"), get(o, "lost_events.count")))
		}
	}
	if diff := cmp.Diff([]string{"filtered:1", "ringbuf_full:7"}, records); diff != "" {
		t.Errorf("lost_events records (-want +got):\n%s", diff)
	}
}

func TestSubscribe(t *testing.T) {
	h := start(t, nil)
	allow, err := filter.Parse("test", `{"binary_regex":["curl"]}`)
	if err != nil {
		t.Fatal(err)
	}
	text := h.e.Subscribe(SubscribeOptions{Allow: allow, Format: FormatText})
	slow := h.e.Subscribe(SubscribeOptions{Buffer: 2})
	all := h.e.Subscribe(SubscribeOptions{})
	h.e.Export(execEvent(proc(1, "/usr/bin/curl", "https://x", &event.Pod{Namespace: "shop", Name: "web"})))
	for i := 0; i < 5; i++ {
		h.e.Export(execEvent(proc(uint32(10+i), "/bin/true", "", nil)))
	}
	if got := string(<-text.C); got != "07:18:21.123 shop/web /usr/bin/curl[1] exec https://x\n" {
		t.Errorf("text line %q", got)
	}
	select {
	case extra := <-text.C:
		t.Errorf("filtered subscriber got %q", extra)
	default:
	}
	if slow.Dropped() != 4 {
		t.Errorf("slow subscriber dropped %d, want 4", slow.Dropped())
	}
	if n := len(all.C); n != 6 {
		t.Errorf("subscriber has %d lines, want 6", n)
	}
	line := <-all.C
	if !json.Valid(line) || line[len(line)-1] != '\n' {
		t.Errorf("JSON line %q", line)
	}
	text.Cancel()
	text.Cancel()
	if _, ok := <-text.C; ok {
		t.Error("channel open after Cancel")
	}
	h.e.Export(execEvent(proc(99, "/usr/bin/curl", "", nil))) // no send on the closed channel
	slow.Cancel()
	all.Cancel()
}

func TestExportDoesNotAllocate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.NodeName = "n"
	cfg.Denylist = `{"binary_regex":["^/bin/ls$"]}`
	cfg.Redact = []string{`(?:--password)(?:\s+|=)(\S+)`}
	e, err := New(cfg, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	e.sinks, e.queues = nil, nil
	e.addSink(&memSink{name: "mem"})
	parent := proc(1, "/bin/sh", "-c x", nil)
	evs := make([]*event.Event, 64)
	for i := range evs {
		evs[i] = &event.Event{Type: event.TypeProcessExec, Time: t0, Process: proc(uint32(100+i), "/usr/bin/psql", "--password=x -h db", nil), Parent: parent}
	}
	drain := func() {
		for c := e.queues[0].pop(context.Background()); c != nil; {
			e.queues[0].release(c)
			if e.queues[0].lines.Load() == 0 {
				return
			}
			c = e.queues[0].pop(context.Background())
		}
	}
	for _, ev := range evs {
		e.Export(ev) // warm caches
	}
	drain()
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		e.Export(evs[i%len(evs)])
		i++
		if i%64 == 0 {
			drain()
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per Export, want 0", allocs)
	}
}

// gather returns every series of reg as `name{labels}` -> value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			name := mf.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.Counter != nil:
				out[name] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[name] = m.Gauge.GetValue()
			case m.Histogram != nil:
				out[name] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return out
}

// Events exported in a batch reach the sink together, in one write, once
// the batch is flushed; an event exported on its own is written at once.
func TestBatchedExportIsWrittenAtFlush(t *testing.T) {
	gate := make(chan struct{}, 1)
	counting := &countingMemSink{memSink: memSink{name: "mem", gate: gate}}
	cfg := DefaultConfig()
	cfg.NodeName = "node-a"
	cfg.LostEventsInterval = Duration(time.Hour)
	e, err := New(cfg, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	e.sinks, e.queues = nil, nil
	e.addSink(counting)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// A single event: the writer takes it and is held in its write
	// while a batch is exported.
	e.Export(execEvent(proc(99, "/bin/true", "", nil)))
	waitFor(t, "the writer to take the first event", func() bool { w, _ := counting.stats(); return w == 1 })
	for i := range 50 {
		e.ExportBatched(execEvent(proc(uint32(100+i), "/bin/true", "", nil)))
	}
	gate <- struct{}{} // the first write completes
	close(gate)        // later writes pass
	time.Sleep(50 * time.Millisecond)
	if w, l := counting.stats(); w != 1 {
		t.Fatalf("before Flush: %d writes of %d lines, want only the first event's", w, l)
	}
	e.Flush()
	waitFor(t, "the batch", func() bool { _, l := counting.stats(); return l == 51 })
	if w, _ := counting.stats(); w != 2 {
		t.Errorf("the batch of 50 took %d writes, want 1", w-1)
	}
	e.Export(execEvent(proc(200, "/bin/true", "", nil)))
	waitFor(t, "the single event", func() bool { _, l := counting.stats(); return l == 52 })
}

type countingMemSink struct {
	memSink
	cmu           sync.Mutex
	writes, lines int
}

func (s *countingMemSink) Write(ctx context.Context, lines []byte, count int) {
	s.cmu.Lock()
	s.writes++
	s.cmu.Unlock()
	s.memSink.Write(ctx, lines, count)
	s.cmu.Lock()
	s.lines += count
	s.cmu.Unlock()
}

func (s *countingMemSink) stats() (writes, lines int) {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	return s.writes, s.lines
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A batch larger than a chunk but smaller than wakeBytes waits for Flush
// (the sink is not woken for each chunk), and arrives whole and in order;
// a batch of more than wakeBytes reaches the sink before its Flush.
func TestBatchWakesSinkAtFlushOrWhenLarge(t *testing.T) {
	counting := &countingMemSink{memSink: memSink{name: "mem"}}
	cfg := DefaultConfig()
	cfg.NodeName = "node-a"
	cfg.LostEventsInterval = Duration(time.Hour)
	e, err := New(cfg, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	e.sinks, e.queues = nil, nil
	e.addSink(counting)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() { cancel(); <-done }()

	args := strings.Repeat("a", 1000)
	e.Export(execEvent(proc(1, "/bin/true", "", nil))) // the writer is waiting after this
	waitFor(t, "the first event", func() bool { _, l := counting.stats(); return l == 1 })
	pid := uint32(2)
	batch := func(want int) (n int) {
		for size := 0; size < want; n++ {
			before := e.queues[0].bytes.Load()
			e.ExportBatched(execEvent(proc(pid, "/bin/true", args, nil)))
			size += int(e.queues[0].bytes.Load() - before)
			pid++
		}
		return n
	}
	small := batch(4 * chunkSize)
	time.Sleep(50 * time.Millisecond)
	if w, l := counting.stats(); w != 1 {
		t.Fatalf("before Flush: %d writes of %d lines, want only the first event's", w, l)
	}
	e.Flush()
	waitFor(t, "the batch", func() bool { _, l := counting.stats(); return l == 1+small })

	large := batch(wakeBytes + chunkSize)
	waitFor(t, "a large batch without Flush", func() bool { _, l := counting.stats(); return l > 1+small })
	e.Flush()
	waitFor(t, "the large batch", func() bool { _, l := counting.stats(); return l == 1+small+large })
	for i, o := range counting.objects(t) {
		if got := fmt.Sprint(get(o, "process_exec.process.pid")); got != fmt.Sprint(i+1) {
			t.Fatalf("line %d: pid %v, want %d (lost or reordered)", i, got, i+1)
		}
	}
}
