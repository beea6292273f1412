package hubble

import (
	"time"

	"strings"
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/vigilsec/vigil/event"
)

func redactPassword(s string) string {
	if i := strings.Index(s, "--password "); i >= 0 {
		rest := s[i+len("--password "):]
		end := strings.IndexByte(rest, ' ')
		if end < 0 {
			end = len(rest)
		}
		return s[:i] + "--password *****" + rest[end:]
	}
	return s
}

func TestConvert(t *testing.T) {
	c := NewConverter("node-a", redactPassword)
	ep := func(name, org, class string) *flowpb.Endpoint {
		return &flowpb.Endpoint{Identity: 1000 + uint32(len(name)), Namespace: "default", PodName: name,
			Labels: []string{"k8s:class=" + class, "k8s:org=" + org}, Workloads: []*flowpb.Workload{{Name: name, Kind: "Deployment"}}}
	}
	base := func() *flowpb.Flow {
		return &flowpb.Flow{
			Time: timestamppb.New(t0), Emitter: &flowpb.Emitter{Name: "Vigil", Version: Version},
			Type: flowpb.FlowType_L3_L4, NodeName: "node-a", TrafficDirection: flowpb.TrafficDirection_INGRESS, Summary: "TCP Flags: SYN",
			IsReply: wrapperspb.Bool(false),
			IP:      &flowpb.IP{Destination: "10.0.0.1", IpVersion: flowpb.IPVersion_IPv4},
			L4: &flowpb.Layer4{Protocol: &flowpb.Layer4_TCP{TCP: &flowpb.TCP{SourcePort: 40000, DestinationPort: 80,
				Flags: &flowpb.TCPFlags{SYN: true}}}},
			Destination: ep("deathstar", "empire", "deathstar"),
		}
	}
	forwarded := base()
	forwarded.Verdict = flowpb.Verdict_FORWARDED
	forwarded.IP.Source = "10.0.0.2"
	forwarded.Source = ep("tiefighter", "empire", "tiefighter")
	forwarded.EventType = &flowpb.CiliumEventType{Type: monitorTrace}
	forwarded.TraceObservationPoint = flowpb.TraceObservationPoint_TO_ENDPOINT
	forwarded.IngressAllowedBy = []*flowpb.Policy{{Kind: "CiliumNetworkPolicy", Namespace: "default", Name: "rule1"}}

	dropped := base()
	dropped.Verdict = flowpb.Verdict_DROPPED
	dropped.IP.Source = "10.0.0.3"
	dropped.Source = ep("xwing", "alliance", "xwing")
	dropped.DropReason = uint32(flowpb.DropReason_POLICY_DENIED)
	dropped.DropReasonDesc = flowpb.DropReason_POLICY_DENIED
	dropped.EventType = &flowpb.CiliumEventType{Type: monitorDrop, SubType: int32(flowpb.DropReason_POLICY_DENIED)}
	dropped.IngressDeniedBy = []*flowpb.Policy{{Kind: "CiliumNetworkPolicy", Namespace: "default", Name: "rule1"}}

	tests := []struct {
		name string
		ev   *event.Event
		want *flowpb.Flow
	}{
		{"forwarded", landing(tiefighter, "10.0.0.2", event.VerdictForwarded, 0), forwarded},
		{"dropped", landing(xwing, "10.0.0.3", event.VerdictDropped, 0), dropped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := c.Convert(tt.ev)
			if diff := cmp.Diff(tt.want, got, protocmp.Transform(), protocmp.IgnoreFields(&flowpb.Flow{}, "extensions")); diff != "" {
				t.Errorf("flow (-want +got):\n%s", diff)
			}
			var d ProcessDecoder
			p, parent := d.ProcessOf(got)
			wantP := &Process{ExecID: curl.ExecID, PID: 42, Binary: "/usr/bin/curl", StartTime: curl.StartTime,
				Arguments: "-u admin --password ***** http://deathstar/v1/request-landing", PodNamespace: "default", PodName: "tiefighter"}
			if diff := cmp.Diff(wantP, p); diff != "" {
				t.Errorf("process (-want +got):\n%s", diff)
			}
			if parent == nil || parent.Binary != "/bin/sh" || parent.PID != 10 {
				t.Errorf("parent %+v, want /bin/sh[10]", parent)
			}
		})
	}
	if c.Convert(&event.Event{Type: event.TypeProcessExec, Process: curl}) != nil {
		t.Error("an exec event converted to a flow")
	}
	// The flows of one process share one extension.
	a, b := c.Convert(landing(xwing, "10.0.0.3", event.VerdictDropped, 0)), c.Convert(landing(xwing, "10.0.0.3", event.VerdictDropped, 1))
	if a.Extensions != b.Extensions {
		t.Error("two flows of one process carry two extensions")
	}
}

func TestParsePolicyRef(t *testing.T) {
	tests := []struct {
		ref  string
		want *flowpb.Policy
	}{
		{"CiliumNetworkPolicy default/rule1", &flowpb.Policy{Kind: "CiliumNetworkPolicy", Namespace: "default", Name: "rule1"}},
		{"CiliumClusterwideNetworkPolicy all", &flowpb.Policy{Kind: "CiliumClusterwideNetworkPolicy", Name: "all"}},
		{"shop/allow-web", &flowpb.Policy{Namespace: "shop", Name: "allow-web"}},
		{"rule", &flowpb.Policy{Name: "rule"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, ParsePolicyRef(tt.ref), protocmp.Transform()); diff != "" {
			t.Errorf("%q (-want +got):\n%s", tt.ref, diff)
		}
	}
}

// A folded report carries its count in Hubble's aggregation counters, on
// the side it was observed.
func TestConvertFoldedCount(t *testing.T) {
	c := NewConverter("node-a", nil)
	for _, tc := range []struct {
		dir  event.Direction
		n    uint64
		want *flowpb.Aggregate
	}{
		{event.DirectionEgress, 0, nil},
		{event.DirectionEgress, 1, nil},
		{event.DirectionEgress, 9, &flowpb.Aggregate{EgressFlowCount: 9}},
		{event.DirectionIngress, 4, &flowpb.Aggregate{IngressFlowCount: 4}},
		{0, 2, &flowpb.Aggregate{UnknownDirectionFlowCount: 2}},
	} {
		ev := &event.Event{Type: event.TypeFlow, Time: t0, Flow: &event.Flow{Protocol: event.ProtoTCP, Direction: tc.dir, Count: tc.n}}
		f := c.Convert(ev)
		if d := cmp.Diff(tc.want, f.GetAggregate(), protocmp.Transform()); d != "" {
			t.Errorf("direction %v count %d: aggregate (-want +got):\n%s", tc.dir, tc.n, d)
		}
		if got, want := FlowCount(f), max(tc.n, 1); got != want {
			t.Errorf("direction %v count %d: FlowCount %d, want %d", tc.dir, tc.n, got, want)
		}
	}
}

// TestConvertHTTP: a request of the HTTP proxy is an L7 flow as Hubble
// shows one, and Hubble's L7 filters select it.
func TestConvertHTTP(t *testing.T) {
	c := NewConverter("node-a", nil)
	ev := &event.Event{Type: event.TypeFlow, Time: t0, Flow: &event.Flow{
		Verdict: event.VerdictDropped, Protocol: event.ProtoTCP, Direction: event.DirectionIngress,
		IngressDeniedBy: []string{"CiliumNetworkPolicy default/rule1"},
		HTTP:            &event.HTTP{Method: "PUT", URL: "http://deathstar/v1/exhaust-port", Protocol: "HTTP/1.1", Code: 403, Latency: 1500 * time.Microsecond},
	}}
	f := c.Convert(ev)
	want := &flowpb.Layer7{Type: flowpb.L7FlowType_RESPONSE, LatencyNs: 1500000, Record: &flowpb.Layer7_Http{Http: &flowpb.HTTP{
		Code: 403, Method: "PUT", Url: "http://deathstar/v1/exhaust-port", Protocol: "HTTP/1.1"}}}
	if d := cmp.Diff(want, f.GetL7(), protocmp.Transform()); d != "" {
		t.Errorf("l7 (-want +got):\n%s", d)
	}
	if f.GetType() != flowpb.FlowType_L7 || f.GetSummary() != "HTTP/1.1 403 1.5ms (PUT http://deathstar/v1/exhaust-port)" || f.GetEventType().GetType() != monitorL7 {
		t.Errorf("flow %v", f)
	}
	for _, tc := range []struct {
		filter *flowpb.FlowFilter
		match  bool
	}{
		{&flowpb.FlowFilter{HttpStatusCode: []string{"403"}}, true},
		{&flowpb.FlowFilter{HttpStatusCode: []string{"2+"}}, false},
		{&flowpb.FlowFilter{HttpMethod: []string{"PUT"}}, true},
		{&flowpb.FlowFilter{HttpPath: []string{"/v1/.*"}}, true},
		{&flowpb.FlowFilter{EventType: []*flowpb.EventTypeFilter{{Type: monitorL7}}}, true},
	} {
		flt, err := CompileFilter([]*flowpb.FlowFilter{tc.filter}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := flt.Match(f); got != tc.match {
			t.Errorf("filter %v: match %v, want %v", tc.filter, got, tc.match)
		}
	}
}
