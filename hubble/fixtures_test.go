package hubble

import (
	"net/netip"
	"time"

	"github.com/vigilsec/vigil/event"
)

var t0 = time.Date(2026, 11, 22, 7, 18, 21, 0, time.UTC)

func pod(ns, name string, labels ...string) event.Endpoint {
	return event.Endpoint{Namespace: ns, PodName: name, Labels: labels, Identity: 1000 + uint32(len(name)),
		Workloads: []event.Workload{{Name: name, Kind: "Deployment"}}}
}

var (
	deathstar  = pod("default", "deathstar", "class=deathstar", "org=empire")
	tiefighter = pod("default", "tiefighter", "class=tiefighter", "org=empire")
	xwing      = pod("default", "xwing", "class=xwing", "org=alliance")
)

var curl = &event.Process{ExecID: "bm9kZTo0Mg", PID: 42, UID: 0, Binary: "/usr/bin/curl",
	Arguments: "-u admin --password hunter2 http://deathstar/v1/request-landing", StartTime: t0.Add(-time.Second),
	Pod: &event.Pod{Namespace: "default", Name: "tiefighter"}}
var shell = &event.Process{ExecID: "bm9kZToxMA", PID: 10, Binary: "/bin/sh", StartTime: t0.Add(-time.Minute)}

// landing is a flow of src landing on the Death Star (TCP 80).
func landing(src event.Endpoint, srcIP string, v event.Verdict, at time.Duration) *event.Event {
	f := &event.Flow{Phase: event.FlowStart, Verdict: v, Source: netip.MustParseAddr(srcIP),
		Destination: netip.MustParseAddr("10.0.0.1"), Protocol: event.ProtoTCP, SourcePort: 40000, DestinationPort: 80,
		TCPFlags: event.TCPSYN, SourceEndpoint: src, DestEndpoint: deathstar, Direction: event.DirectionIngress}
	if v == event.VerdictDropped {
		f.DropReasonDesc = "POLICY_DENIED"
		f.IngressDeniedBy = []string{"CiliumNetworkPolicy default/rule1"}
	} else {
		f.PolicyNames = []string{"CiliumNetworkPolicy default/rule1"}
	}
	return &event.Event{Type: event.TypeFlow, Time: t0.Add(at), Flow: f, Process: curl, Parent: shell}
}
