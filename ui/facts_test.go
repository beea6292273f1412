package ui

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/hubble"
)

// The map reads the agent's events as it reads their Hubble flows: the
// same workloads, edge, verdict, policies, drop reason and process.
func TestEventFactsMatchFlowFacts(t *testing.T) {
	conv := hubble.NewConverter("node-a", redactPassword)
	world := event.Endpoint{Identity: 2, Labels: []string{"reserved:world"}}
	host := event.Endpoint{Identity: 1, Labels: []string{"reserved:host"}}
	bare := event.Endpoint{Namespace: "default", PodName: "lonely", Labels: []string{"app=lonely"}}
	at := time.Now()
	flow := func(mod func(*event.Flow)) *event.Event {
		f := &event.Flow{Phase: event.FlowStart, Verdict: event.VerdictForwarded, Protocol: event.ProtoTCP,
			Source: netip.MustParseAddr(ips["tiefighter"]), Destination: netip.MustParseAddr(ips["deathstar"]),
			SourcePort: 41000, DestinationPort: 80, SourceEndpoint: tiefighter, DestEndpoint: deathstar,
			Direction: event.DirectionEgress, PolicyNames: []string{"NetworkPolicy default/allow-web"}}
		mod(f)
		return &event.Event{Type: event.TypeFlow, Time: at, Flow: f, Process: landClient, Parent: shipShell}
	}
	evs := append(clusterFlows(50, 200),
		flow(func(f *event.Flow) {}),
		flow(func(f *event.Flow) { f.Direction = event.DirectionIngress }),
		flow(func(f *event.Flow) { f.IsReply = true }),
		flow(func(f *event.Flow) { f.Protocol = event.ProtoUDP; f.DestinationPort = 53 }),
		flow(func(f *event.Flow) { f.Protocol = event.ProtoSCTP }),
		flow(func(f *event.Flow) { f.Protocol = 1; f.SourcePort, f.DestinationPort = 0, 0 }),
		flow(func(f *event.Flow) { f.Verdict = event.VerdictAudit }),
		flow(func(f *event.Flow) {
			f.Verdict, f.DropReasonDesc, f.PolicyNames = event.VerdictDropped, "POLICY_DENIED", nil
			f.EgressDeniedBy = []string{"CiliumNetworkPolicy default/rule1", "bare-name"}
		}),
		flow(func(f *event.Flow) {
			f.Verdict, f.DropReasonDesc, f.Direction = event.VerdictDropped, "NOT_A_REASON", event.DirectionIngress
			f.IngressDeniedBy = []string{"CiliumClusterwideNetworkPolicy cluster-wide"}
		}),
		flow(func(f *event.Flow) { f.DestEndpoint, f.Destination = world, netip.MustParseAddr("1.1.1.1") }),
		flow(func(f *event.Flow) { f.DestEndpoint, f.Destination = event.Endpoint{}, netip.Addr{} }),
		flow(func(f *event.Flow) { f.SourceEndpoint = host }),
		flow(func(f *event.Flow) { f.SourceEndpoint = bare }),
		flow(func(f *event.Flow) { f.Count = 7 }),
		flow(func(f *event.Flow) { f.Count, f.Direction = 3, event.DirectionIngress }),
		flow(func(f *event.Flow) { f.Count, f.Verdict, f.DropReasonDesc = 5, event.VerdictDropped, "POLICY_DENIED" }),
		flow(func(f *event.Flow) { f.SourceEndpoint = bare }),
	)
	evs[len(evs)-1].Process = nil
	var procs hubble.ProcessDecoder
	opt := cmp.AllowUnexported(facts{}, side{}, wkey{}, policyRefs{})
	for i, ev := range evs {
		fromEvent := eventFacts(ev, conv)
		fromFlow := flowFacts(conv.Convert(ev), &procs)
		if !fromEvent.time.Equal(fromFlow.time) {
			t.Errorf("flow %d: time %v from the event, %v from the Hubble flow", i, fromEvent.time, fromFlow.time)
		}
		fromEvent.time, fromFlow.time = time.Time{}, time.Time{}
		// Policies are compared by what the map keeps of them.
		keys := func(fa *facts) [4][]policyKey {
			var out [4][]policyKey
			for j, p := range []policyRefs{fa.egressAllowed, fa.ingressAllowed, fa.egressDenied, fa.ingressDenied} {
				for k := range p.len() {
					out[j] = append(out[j], p.at(k))
				}
			}
			fa.egressAllowed, fa.ingressAllowed, fa.egressDenied, fa.ingressDenied = policyRefs{}, policyRefs{}, policyRefs{}, policyRefs{}
			return out
		}
		pe, pf := keys(&fromEvent), keys(&fromFlow)
		if d := cmp.Diff(pf, pe, cmp.AllowUnexported(policyKey{})); d != "" {
			t.Errorf("flow %d policies (-from the Hubble flow +from the event):\n%s", i, d)
		}
		if d := cmp.Diff(fromFlow, fromEvent, opt); d != "" {
			t.Errorf("flow %d (-from the Hubble flow +from the event):\n%s", i, d)
		}
	}
}
