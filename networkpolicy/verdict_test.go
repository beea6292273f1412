package networkpolicy

import (
	"net/netip"
	"testing"

	"github.com/vigilsec/vigil/internal/manifest"
)

// The node may always reach its pods; loopback is never policed; egress to
// the node is policed like any other.
func TestNodeAndLoopback(t *testing.T) {
	src := "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny-all, namespace: x}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Egress]\n---\n" +
		"apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x}\nspec: {containers: [{name: c, image: i}]}\nstatus: {podIP: 198.18.0.11}\n"
	docs, err := manifest.Split("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Parse(docs)
	if err != nil {
		t.Fatal(err)
	}
	res.HostIPs = []netip.Addr{netip.MustParseAddr("198.18.0.254")}
	e, err := Compile(res, nil)
	if err != nil {
		t.Fatal(err)
	}
	pod, _ := e.Pod("x/a")
	node := e.Address(netip.MustParseAddr("198.18.0.254"))
	lo := e.Address(netip.MustParseAddr("127.0.0.1"))
	tests := []struct {
		name     string
		from, to Endpoint
		verdict  Verdict
		reason   Reason
	}{
		{"node to pod", node, pod, Allow, ReasonFromNode},
		{"pod to node", pod, node, Deny, ReasonDefaultDeny},
		{"pod to loopback", pod, lo, Allow, ReasonLoopback},
	}
	for _, tt := range tests {
		r := e.Check(tt.from, tt.to, ProtoTCP, 80)
		side := r.Ingress
		if tt.from.Pod != nil {
			side = r.Egress
		}
		if r.Verdict != tt.verdict || side.Reason != tt.reason {
			t.Errorf("%s: %s (%s), want %s (%s)", tt.name, r.Verdict, side.Reason, tt.verdict, tt.reason)
		}
	}
	if node.Identity != IdentityHost || lo.Identity != IdentityLocalhost {
		t.Errorf("identities: node %d, loopback %d", node.Identity, lo.Identity)
	}
}
