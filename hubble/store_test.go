package hubble

import (
	"context"
	"strings"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/vigilsec/vigil/event"
)

// The agent's store keeps events and converts them when read: what an
// Observer client receives is what it received when flows were converted as
// they arrived, with the same filters, field masks, node name and
// redaction.
func TestEventStoreServesConvertedFlows(t *testing.T) {
	conv := NewConverter("node-a", redactPassword)
	events, err := NewEventStore(64, conv)
	if err != nil {
		t.Fatal(err)
	}
	flows := newStore(t, 64)
	for i := 0; i < 6; i++ {
		ev := landing(tiefighter, "10.0.0.2", event.VerdictForwarded, time.Duration(i)*time.Second)
		if i%2 == 1 {
			ev = landing(xwing, "10.0.0.3", event.VerdictDropped, time.Duration(i)*time.Second)
		}
		events.PutEvent(ev)
		flows.Put(conv.Convert(ev))
	}
	events.PutEvent(&event.Event{Type: event.TypeProcessExec}) // not a flow: left out
	evClient, _ := serve(t, events)
	flClient, _ := serve(t, flows)
	ctx := context.Background()
	for _, req := range []*observerpb.GetFlowsRequest{
		{Number: 10},
		{Number: 2, First: true},
		{Number: 10, Whitelist: []*flowpb.FlowFilter{{Verdict: []flowpb.Verdict{flowpb.Verdict_DROPPED}}}},
		{Number: 10, Blacklist: []*flowpb.FlowFilter{{SourcePod: []string{"default/tiefighter"}}}},
		{Number: 3, FieldMask: &fieldmaskpb.FieldMask{Paths: []string{"verdict", "source.pod_name", "node_name", "extensions"}}},
	} {
		get := func(c observerpb.ObserverClient) []*observerpb.GetFlowsResponse {
			st, err := c.GetFlows(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			return recv(t, st, 0)
		}
		want, got := get(flClient), get(evClient)
		if len(want) == 0 {
			t.Fatalf("%v: no flows from the flow store", req)
		}
		if d := cmp.Diff(want, got, protocmp.Transform()); d != "" {
			t.Errorf("%v: event store differs (-converted on arrival +converted on read):\n%s", req, d)
		}
	}
	all, _, _ := events.Read(nil, 0, 0)
	if p, _ := new(ProcessDecoder).ProcessOf(all[0]); p == nil || strings.Contains(p.Arguments, "hunter2") {
		t.Errorf("process %+v: want the curl process with its password redacted", p)
	}
}

// A flow is converted once, whoever reads it: readers share the message.
// Records give the event itself, and overwritten flows are counted.
func TestEventStoreReads(t *testing.T) {
	conv := NewConverter("node-a", nil)
	s, err := NewEventStore(16, conv)
	if err != nil {
		t.Fatal(err)
	}
	var evs []*event.Event
	for i := 0; i < 20; i++ {
		ev := landing(xwing, "10.0.0.3", event.VerdictDropped, time.Duration(i)*time.Second)
		evs = append(evs, ev)
		s.PutEvent(ev)
	}
	recs, next, lost := s.ReadRecords(nil, 0, 0)
	if len(recs) != 16 || next != 20 || lost != 4 {
		t.Fatalf("ReadRecords from 0: %d records, next %d, lost %d; want 16, 20, 4", len(recs), next, lost)
	}
	if recs[0].Event() != evs[4] || recs[15].Event() != evs[19] {
		t.Errorf("records hold events %v..%v, want the 5th to the 20th", recs[0].Event().Time, recs[15].Event().Time)
	}
	a, _, _ := s.Read(nil, 10, 0)
	b, _, _ := s.Read(nil, 4, 0)
	if len(a) != 10 || len(b) != 16 {
		t.Fatalf("Read: %d and %d flows, want 10 and 16", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i+6] {
			t.Fatalf("flow %d was converted twice", 10+i)
		}
	}
	if got := a[0].GetTime().AsTime(); !got.Equal(evs[10].Time) || a[0].GetNodeName() != "node-a" {
		t.Errorf("flow 10: time %v on %q, want %v on node-a", got, a[0].GetNodeName(), evs[10].Time)
	}
	if f := recs[0].Flow(); f.GetVerdict() != flowpb.Verdict_DROPPED || f.GetSource().GetPodName() != "xwing" {
		t.Errorf("record 0 flow %v, want the xwing's dropped flow", f)
	}
}
