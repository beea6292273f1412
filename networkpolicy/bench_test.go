package networkpolicy_test

import (
	"fmt"
	"net/netip"
	"sort"
	"testing"
	"time"

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

// flattenDelta flattens what a delta says may have changed, as the
// datapath does, and returns the number of entries it computed.
func flattenDelta(e *networkpolicy.Engine, d *networkpolicy.Delta) int {
	n := 0
	if d.All {
		for _, m := range e.Flatten().Policy {
			n += len(m)
		}
		return n
	}
	for local := range d.Locals {
		n += len(e.FlattenLocal(local))
	}
	for local, remotes := range d.Remotes {
		if d.Locals[local] {
			continue
		}
		for r := range remotes {
			n += len(e.FlattenRemote(local, r))
		}
	}
	return n
}

// BenchmarkChurn measures incremental updates with 10,000 rules over 1,000
// identities (conntest.ScaleManifests): each operation is one change and
// its reverse (two updates), compiled and flattened where the delta says.
// full_ms is a full compile and flatten of the same resources, the cost of
// every change before compilation was incremental; speedup is full_ms over
// the time of one update.
func BenchmarkChurn(b *testing.B) {
	docs, err := manifest.Split("scale.yaml", []byte(conntest.ScaleManifests(1000, 10000)))
	if err != nil {
		b.Fatal(err)
	}
	base, err := networkpolicy.Parse(docs)
	if err != nil {
		b.Fatal(err)
	}
	extra := `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: extra, namespace: bench}
spec:
  podSelector: {matchLabels: {id: "i7"}}
  ingress:
  - from: [{podSelector: {matchLabels: {role: client}}}]
    ports: [{port: %d, protocol: TCP}]
`
	policy := func(port int) *networkpolicy.Policy {
		d, err := manifest.Split("extra.yaml", []byte(fmt.Sprintf(extra, port)))
		if err != nil {
			b.Fatal(err)
		}
		res, err := networkpolicy.Parse(d)
		if err != nil {
			b.Fatal(err)
		}
		return res.Policies[0]
	}
	with := func(pods []*networkpolicy.Pod, pols ...*networkpolicy.Policy) *networkpolicy.Resources {
		r := *base
		r.Pods = pods
		r.Policies = append(append([]*networkpolicy.Policy(nil), base.Policies...), pols...)
		return &r
	}
	pod := func(name string, labels map[string]string, ip string) *networkpolicy.Pod {
		return &networkpolicy.Pod{Namespace: "bench", Name: name, Labels: labels, ServiceAccount: "default",
			IPs: []netip.Addr{netip.MustParseAddr(ip)}}
	}
	replace := func(name string, p *networkpolicy.Pod) []*networkpolicy.Pod {
		out := append([]*networkpolicy.Pod(nil), base.Pods...)
		for i, q := range out {
			if q.Name == name {
				out[i] = p
			}
		}
		return out
	}
	plus := func(p *networkpolicy.Pod) []*networkpolicy.Pod {
		out := append(append([]*networkpolicy.Pod(nil), base.Pods...), p)
		sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
		return out
	}
	pol80, pol81 := policy(80), policy(81)
	// The client's policy with one rule more: parsed again, so every rule
	// of it is new to the compiler.
	docs, err = manifest.Split("scale.yaml", []byte(conntest.ScaleManifests(1000, 10001)))
	if err != nil {
		b.Fatal(err)
	}
	more, err := networkpolicy.Parse(docs)
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name string
		a, b *networkpolicy.Resources
	}{
		{"pod of an existing identity comes and goes", with(base.Pods), with(plus(pod("new", map[string]string{"id": "i5"}, "198.18.9.1")))},
		{"pod of a new identity that rules select comes and goes", with(base.Pods), with(plus(pod("new", map[string]string{"id": "i5", "v": "2"}, "198.18.9.1")))},
		{"pod relabelled between two selected identities", with(base.Pods), with(replace("p5", pod("p5", map[string]string{"id": "i6"}, "198.18.0.6")))},
		{"policy of another pod changed", with(base.Pods, pol80), with(base.Pods, pol81)},
		{"the client's policy of 10,000 rules gains a rule", with(base.Pods), &networkpolicy.Resources{Pods: base.Pods, Policies: more.Policies}},
	}
	full := func(res *networkpolicy.Resources) float64 {
		best := 0.0
		for i := 0; i < 3; i++ {
			t0 := time.Now()
			e, err := networkpolicy.Compile(res, nil)
			if err != nil {
				b.Fatal(err)
			}
			e.Flatten()
			if ms := float64(time.Since(t0)) / 1e6; best == 0 || ms < best {
				best = ms
			}
		}
		return best
	}
	fullMS := full(with(base.Pods))
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			comp := networkpolicy.NewCompiler(nil)
			if _, _, err := comp.Update(tc.a); err != nil {
				b.Fatal(err)
			}
			entries := 0
			b.ReportAllocs()
			for b.Loop() {
				for _, res := range []*networkpolicy.Resources{tc.b, tc.a} {
					e, d, err := comp.Update(res)
					if err != nil {
						b.Fatal(err)
					}
					entries += flattenDelta(e, d)
				}
			}
			perUpdate := float64(b.Elapsed()) / float64(2*b.N)
			b.ReportMetric(perUpdate/1e6, "ms/update")
			b.ReportMetric(float64(entries)/float64(2*b.N), "entries/update")
			b.ReportMetric(fullMS, "full_ms")
			b.ReportMetric(fullMS*1e6/perUpdate, "speedup")
		})
	}
}
