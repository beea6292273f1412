package flows

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/exporter/encode"
	"github.com/vigilsec/vigil/kprobes/abi"
	"github.com/vigilsec/vigil/process"
)

// foldClock is a clock the test moves.
type foldClock struct{ t time.Time }

func (c *foldClock) now() time.Time { return c.t }

func newFoldingDecoder(t *testing.T, window time.Duration) (*Decoder, *Folds, *foldClock, *collect) {
	t.Helper()
	d, out := newDecoder(t, nil)
	clock := &foldClock{t: time.Unix(1_700_000_000, 0)}
	f := NewFolds(window)
	f.now = clock.now
	d.Fold(f)
	return d, f, clock, out
}

// connect is the record of a connection from pid's local port to
// 127.0.0.1:dport (egress), or to the local port dport (ingress).
func connect(pid uint32, dir abi.FlowFlowDirection, phase abi.FlowFlowPhase, ephemeral, dport uint16) abi.FlowEvent {
	r := abi.FlowEvent{Phase: uint8(phase), Direction: uint8(dir), Protocol: event.ProtoTCP, Family: 4,
		Local: addr("::ffff:127.0.0.1"), Remote: addr("::ffff:127.0.0.1"), LocalPort: ephemeral, RemotePort: dport}
	if dir == abi.FlowFlowDirectionFLOW_INGRESS {
		r.LocalPort, r.RemotePort = dport, ephemeral
	}
	if phase == abi.FlowFlowPhaseFLOW_END {
		r.BytesSent, r.BytesReceived, r.PacketsSent, r.PacketsReceived = 100, 10, 3, 2
	}
	r.Hdr.Pid = pid
	return r
}

func handle(t *testing.T, d *Decoder, r abi.FlowEvent) {
	t.Helper()
	if err := d.Handle(flowRecord(r)); err != nil {
		t.Fatal(err)
	}
}

// totals adds up, per run (direction, phase, service port) of one process, the
// flows that the events stand for.
type runID struct {
	dir   event.Direction
	phase event.FlowPhase
	port  uint16
}

func totals(events []*event.Event) map[runID]uint64 {
	m := map[runID]uint64{}
	for _, ev := range events {
		f := ev.Flow
		m[runID{dir: f.Direction, phase: f.Phase, port: f.DestinationPort}] += f.Count
	}
	return m
}

func TestFoldRepeatedConnections(t *testing.T) {
	d, f, clock, out := newFoldingDecoder(t, DefaultFoldWindow)
	const n = 500
	for i := range n {
		handle(t, d, connect(7, abi.FlowFlowDirectionFLOW_EGRESS, abi.FlowFlowPhaseFLOW_START, uint16(40000+i), 8080))
		handle(t, d, connect(7, abi.FlowFlowDirectionFLOW_INGRESS, abi.FlowFlowPhaseFLOW_START, uint16(40000+i), 8080))
		if i%5 == 0 { // another service, another run
			handle(t, d, connect(7, abi.FlowFlowDirectionFLOW_EGRESS, abi.FlowFlowPhaseFLOW_START, uint16(50000+i), 9090))
		}
	}
	// The first flow of each run is reported at once, the others wait.
	if len(out.events) != 3 {
		t.Fatalf("%d events before the sweep, want the 3 heads of the runs", len(out.events))
	}
	for _, ev := range out.events {
		if ev.Flow.Count != 1 {
			t.Errorf("a head stands for %d flows, want 1", ev.Flow.Count)
		}
	}
	// Before the window has passed, nothing is reported.
	clock.t = clock.t.Add(DefaultFoldWindow / 2)
	f.sweep(d.sink, false)
	if len(out.events) != 3 {
		t.Fatalf("%d events after a sweep within the window, want 3", len(out.events))
	}
	clock.t = clock.t.Add(DefaultFoldWindow)
	f.sweep(d.sink, false)
	if len(out.events) != 6 {
		t.Fatalf("%d events after the window, want the 3 heads and a report of each run", len(out.events))
	}
	want := map[runID]uint64{
		{dir: event.DirectionEgress, phase: event.FlowStart, port: 8080}:  n,
		{dir: event.DirectionIngress, phase: event.FlowStart, port: 8080}: n,
		{dir: event.DirectionEgress, phase: event.FlowStart, port: 9090}:  n / 5,
	}
	if diff := cmp.Diff(want, totals(out.events)); diff != "" {
		t.Errorf("flows accounted per run (-want +got):\n%s", diff)
	}
	// A report carries the ports of the last flow it stands for.
	for _, ev := range out.events[3:] {
		f := ev.Flow
		switch {
		case f.Direction == event.DirectionEgress && f.DestinationPort == 8080:
			if f.SourcePort != 40000+n-1 || f.Count != n-1 {
				t.Errorf("egress report: source port %d, count %d; want %d and %d", f.SourcePort, f.Count, 40000+n-1, n-1)
			}
		case f.Direction == event.DirectionIngress:
			if f.SourcePort != 40000+n-1 || f.Count != n-1 {
				t.Errorf("ingress report: source port %d, count %d; want %d and %d", f.SourcePort, f.Count, 40000+n-1, n-1)
			}
		}
	}
	if got, want := f.Folded(), uint64(2*n+n/5-3); got != want {
		t.Errorf("Folded() = %d, want %d", got, want)
	}

	// A run that gains nothing for a window ends: the next flow is
	// reported at once.
	clock.t = clock.t.Add(DefaultFoldWindow)
	f.sweep(d.sink, false)
	handle(t, d, connect(7, abi.FlowFlowDirectionFLOW_EGRESS, abi.FlowFlowPhaseFLOW_START, 45000, 8080))
	if len(out.events) != 7 || out.events[6].Flow.SourcePort != 45000 || out.events[6].Flow.Count != 1 {
		t.Errorf("a flow after its run ended was not reported on its own: %d events", len(out.events))
	}
}

func TestFoldSumsCountersOfEnds(t *testing.T) {
	d, f, clock, out := newFoldingDecoder(t, DefaultFoldWindow)
	for i := range 10 {
		handle(t, d, connect(7, abi.FlowFlowDirectionFLOW_EGRESS, abi.FlowFlowPhaseFLOW_END, uint16(40000+i), 8080))
	}
	clock.t = clock.t.Add(DefaultFoldWindow)
	f.sweep(d.sink, false)
	if len(out.events) != 2 {
		t.Fatalf("%d events, want a head and a report", len(out.events))
	}
	got := *out.events[1].Flow
	if got.Count != 9 || got.BytesSent != 900 || got.BytesReceived != 90 || got.PacketsSent != 27 || got.PacketsReceived != 18 {
		t.Errorf("report of 9 ends: count %d, bytes %d/%d, packets %d/%d; want 9, 900/90, 27/18",
			got.Count, got.BytesSent, got.BytesReceived, got.PacketsSent, got.PacketsReceived)
	}
}

func TestFoldDistinguishesProcessesAndAddresses(t *testing.T) {
	d, _, _, out := newFoldingDecoder(t, DefaultFoldWindow)
	a := connect(7, abi.FlowFlowDirectionFLOW_EGRESS, abi.FlowFlowPhaseFLOW_START, 40000, 443)
	b := a
	b.Hdr.Pid = 8
	c := a
	c.Remote = addr("::ffff:10.0.0.2")
	e := a
	e.Phase = uint8(abi.FlowFlowPhaseFLOW_END)
	u := a
	u.Protocol = event.ProtoUDP
	for _, r := range []abi.FlowEvent{a, b, c, e, u} {
		handle(t, d, r)
	}
	if len(out.events) != 5 {
		t.Errorf("%d events for five different flows, want each reported", len(out.events))
	}
}

// TestFoldStopReportsPending: what is pending when the sweep stops is
// reported, and later flows are reported one by one.
func TestFoldStopReportsPending(t *testing.T) {
	d, f, _, out := newFoldingDecoder(t, time.Hour)
	for i := range 4 {
		handle(t, d, connect(7, abi.FlowFlowDirectionFLOW_EGRESS, abi.FlowFlowPhaseFLOW_START, uint16(40000+i), 8080))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.Run(ctx, d.sink); err != nil {
		t.Fatal(err)
	}
	if len(out.events) != 2 || out.events[1].Flow.Count != 3 {
		t.Fatalf("after the sweep stopped: %d events, want the head and a report of 3", len(out.events))
	}
	handle(t, d, connect(7, abi.FlowFlowDirectionFLOW_EGRESS, abi.FlowFlowPhaseFLOW_START, 41000, 8080))
	handle(t, d, connect(7, abi.FlowFlowDirectionFLOW_EGRESS, abi.FlowFlowPhaseFLOW_START, 41001, 8080))
	if len(out.events) != 4 {
		t.Errorf("flows after the sweep stopped: %d events, want 4 (each reported)", len(out.events))
	}
}

func TestFoldReportAllAndTableFull(t *testing.T) {
	d, f, _, out := newFoldingDecoder(t, 0)
	for i := range 5 {
		handle(t, d, connect(7, abi.FlowFlowDirectionFLOW_EGRESS, abi.FlowFlowPhaseFLOW_START, uint16(40000+i), 8080))
	}
	if len(out.events) != 5 || f.Folded() != 0 {
		t.Errorf("report-all: %d events and %d folded, want 5 and 0", len(out.events), f.Folded())
	}

	d, f, _, out = newFoldingDecoder(t, DefaultFoldWindow)
	for i := range maxFoldRuns {
		r := connect(uint32(1000+i/60000), abi.FlowFlowDirectionFLOW_EGRESS, abi.FlowFlowPhaseFLOW_START, 40000, uint16(i%60000+1))
		handle(t, d, r)
	}
	extra := connect(99, abi.FlowFlowDirectionFLOW_EGRESS, abi.FlowFlowPhaseFLOW_START, 40000, 443)
	handle(t, d, extra)
	handle(t, d, extra)
	if got := len(out.events); got != maxFoldRuns+2 {
		t.Errorf("%d events, want %d: flows of a run the full table cannot hold are each reported", got, maxFoldRuns+2)
	}
	if f.TableFull() != 2 {
		t.Errorf("TableFull() = %d, want 2", f.TableFull())
	}
}

// TestFoldCountInStream: the report of a run is a flow line with the
// count of the flows it stands for.
func TestFoldCountInStream(t *testing.T) {
	d, f, clock, out := newFoldingDecoder(t, DefaultFoldWindow)
	for i := range 20 {
		handle(t, d, connect(7, abi.FlowFlowDirectionFLOW_EGRESS, abi.FlowFlowPhaseFLOW_START, uint16(40000+i), 8080))
	}
	clock.t = clock.t.Add(DefaultFoldWindow)
	f.sweep(d.sink, false)
	if len(out.events) != 2 {
		t.Fatalf("%d events, want 2", len(out.events))
	}
	var line struct {
		Flow struct {
			Count int `json:"count"`
			L4    struct {
				TCP struct {
					SourcePort      int `json:"source_port"`
					DestinationPort int `json:"destination_port"`
				}
			} `json:"l4"`
		} `json:"flow"`
	}
	b := encode.NewEncoder(nil).AppendJSON(nil, out.events[1], "node-a")
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&line); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if line.Flow.Count != 19 || line.Flow.L4.TCP.SourcePort != 40019 || line.Flow.L4.TCP.DestinationPort != 8080 {
		t.Errorf("report line: count %d, ports %d→%d; want 19, 40019→8080: %s",
			line.Flow.Count, line.Flow.L4.TCP.SourcePort, line.Flow.L4.TCP.DestinationPort, b)
	}
}

func TestParseRepeats(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"fold", DefaultFoldWindow, false},
		{"report-all", 0, false},
		{"rate-limit=1m", time.Minute, false},
		{"rate-limit=10ms", 0, true},
		{"rate-limit=48h", 0, true},
		{"sometimes", 0, true},
	} {
		got, err := ParseRepeats(c.in)
		if (err != nil) != c.err || (!c.err && got != c.want) {
			t.Errorf("ParseRepeats(%q) = %v, %v; want %v (error %v)", c.in, got, err, c.want, c.err)
		}
	}
}

// The report of a run that started before its container's pod was known
// carries the pod the process has by the time of the report.
func TestFoldReportGetsThePod(t *testing.T) {
	d, f, clock, out := newFoldingDecoder(t, DefaultFoldWindow)
	const cg = 4242
	proc := d.cache.AddProc(&process.ProcRecord{PID: 7, PPID: 1, StartKtime: 1e9, Binary: "/usr/bin/curl", CgroupID: cg})
	if proc.Pod != nil {
		t.Fatal("the process has a pod before SetPod")
	}
	for i := range 5 {
		r := connect(7, abi.FlowFlowDirectionFLOW_EGRESS, abi.FlowFlowPhaseFLOW_START, uint16(40000+i), 443)
		r.CgroupId = cg
		handle(t, d, r)
	}
	pod := &event.Pod{Namespace: "shop", Name: "web-1", Labels: []event.Label{{Key: "app", Value: "web"}}}
	d.cache.SetPod(cg, pod)
	clock.t = clock.t.Add(DefaultFoldWindow)
	f.sweep(d.sink, false)
	if len(out.events) != 2 {
		t.Fatalf("%d events, want a head and a report", len(out.events))
	}
	rep := out.events[1]
	if rep.Process == nil || rep.Process.Pod != pod || rep.Flow.Count != 4 {
		t.Fatalf("report: process %+v, count %d; want the process with its pod and a count of 4", rep.Process, rep.Flow.Count)
	}
	want := event.Endpoint{Namespace: "shop", PodName: "web-1", Labels: []string{"app=web"}}
	if diff := cmp.Diff(want, rep.Flow.SourceEndpoint); diff != "" {
		t.Errorf("the report's local endpoint (-want +got):\n%s", diff)
	}
}
