package ui

import (
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/hubble"
)

func endpoint(ns, name string, labels ...string) event.Endpoint {
	return event.Endpoint{Namespace: ns, PodName: name + "-6d5f9c7b8-x2x7q", Labels: labels, Identity: 40000 + uint32(len(name)),
		Workloads: []event.Workload{{Name: name, Kind: "Deployment"}}}
}

var (
	deathstar  = endpoint("default", "deathstar", "class=deathstar", "org=empire")
	tiefighter = endpoint("default", "tiefighter", "class=tiefighter", "org=empire")
	xwing      = endpoint("default", "xwing", "class=xwing", "org=alliance")
)

func proc(pid uint32, binary, args, ns, pod string, parent string) *event.Process {
	return &event.Process{ExecID: "exec-" + binary + "-" + pod, ParentExecID: parent, PID: pid, Binary: binary, Arguments: args,
		StartTime: time.Now().Add(-time.Hour), Pod: &event.Pod{Namespace: ns, Name: pod}}
}

var (
	shipShell  = proc(7, "/bin/sh", "-c land", "default", "ship", "")
	landClient = proc(8, "/usr/bin/curl", "-s -XPOST deathstar.default.svc/v1/request-landing --password hunter2", "default", "ship", shipShell.ExecID)
	starServer = proc(1, "/usr/local/bin/deathstar", "serve --addr :80", "default", deathstar.PodName, "")
)

var ips = map[string]string{"deathstar": "10.0.1.10", "tiefighter": "10.0.2.11", "xwing": "10.0.3.12"}

// landingFlows are the Death Star demo's flows as an agent reports them:
// the TIE fighter's landing forwarded (allowed by rule1), the X-wing's
// dropped at the Death Star (denied by rule1), each seen on egress at the
// ship and on ingress at the station.
func landingFlows(src event.Endpoint, at time.Time, dropped bool) []*event.Event {
	name := src.Workloads[0].Name
	f := event.Flow{Phase: event.FlowStart, Verdict: event.VerdictForwarded, Source: netip.MustParseAddr(ips[name]),
		Destination: netip.MustParseAddr(ips["deathstar"]), Protocol: event.ProtoTCP, SourcePort: 41000, DestinationPort: 80,
		TCPFlags: event.TCPSYN, SourceEndpoint: src, DestEndpoint: deathstar}
	egress, ingress := f, f
	egress.Direction, ingress.Direction = event.DirectionEgress, event.DirectionIngress
	if dropped {
		ingress.Verdict, ingress.DropReasonDesc = event.VerdictDropped, "POLICY_DENIED"
		ingress.IngressDeniedBy = []string{"CiliumNetworkPolicy default/rule1"}
		return []*event.Event{
			{Type: event.TypeFlow, Time: at, Flow: &egress, Process: landClient, Parent: shipShell},
			{Type: event.TypeFlow, Time: at.Add(time.Millisecond), Flow: &ingress},
		}
	}
	ingress.PolicyNames = []string{"CiliumNetworkPolicy default/rule1"}
	return []*event.Event{
		{Type: event.TypeFlow, Time: at, Flow: &egress, Process: landClient, Parent: shipShell},
		{Type: event.TypeFlow, Time: at.Add(time.Millisecond), Flow: &ingress, Process: starServer},
	}
}

func redactPassword(s string) string {
	const k = "--password "
	for i := 0; i+len(k) <= len(s); i++ {
		if s[i:i+len(k)] == k {
			j := i + len(k)
			for j < len(s) && s[j] != ' ' {
				j++
			}
			return s[:i+len(k)] + "*****" + s[j:]
		}
	}
	return s
}

// deathstarStore holds the demo's flows: two TIE fighter landings and two
// X-wing attempts, a minute ago.
func deathstarStore(t testing.TB) (*hubble.Store, *hubble.Converter) {
	t.Helper()
	store, err := hubble.NewStore(1024)
	if err != nil {
		t.Fatal(err)
	}
	conv := hubble.NewConverter("node-a", redactPassword)
	at := time.Now().Add(-time.Minute)
	for i := 0; i < 2; i++ {
		for _, ev := range append(landingFlows(tiefighter, at, false), landingFlows(xwing, at.Add(time.Second), true)...) {
			store.Put(conv.Convert(ev))
		}
		at = at.Add(10 * time.Second)
	}
	return store, conv
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s+"\n"), 0o600) }
