package networkpolicy_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/vigilsec/vigil/internal/manifest"
	"github.com/vigilsec/vigil/networkpolicy"
	"github.com/vigilsec/vigil/networkpolicy/conntest"
)

func scaleEngine(tb testing.TB, identities, rules int) *networkpolicy.Engine {
	docs, err := manifest.Split("scale.yaml", []byte(conntest.ScaleManifests(identities, rules)))
	if err != nil {
		tb.Fatal(err)
	}
	res, err := networkpolicy.Parse(docs)
	if err != nil {
		tb.Fatal(err)
	}
	e, err := networkpolicy.Compile(res, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// BenchmarkDecide measures the verdict function for the client of a policy
// with 10 and 10,000 rules over 1,000 identities.
func BenchmarkDecide(b *testing.B) {
	for _, rules := range []int{10, 10000} {
		b.Run(fmt.Sprintf("rules=%d", rules), func(b *testing.B) {
			e := scaleEngine(b, 1000, rules)
			client, err := e.Pod("bench/client")
			if err != nil {
				b.Fatal(err)
			}
			remote := e.IdentityOf(netip.MustParseAddr("198.18.0.5"))
			b.ReportAllocs()
			for b.Loop() {
				e.Decide(client.Local, networkpolicy.Egress, remote, networkpolicy.ProtoUDP, 1000)
			}
		})
	}
}

// BenchmarkCompileFlatten measures compiling and flattening at scale.
func BenchmarkCompileFlatten(b *testing.B) {
	docs, err := manifest.Split("scale.yaml", []byte(conntest.ScaleManifests(1000, 10000)))
	if err != nil {
		b.Fatal(err)
	}
	res, err := networkpolicy.Parse(docs)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		e, err := networkpolicy.Compile(res, nil)
		if err != nil {
			b.Fatal(err)
		}
		e.Flatten()
	}
}
