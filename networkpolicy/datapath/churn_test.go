package datapath_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/manifest"
	"github.com/vigilsec/vigil/networkpolicy"
	"github.com/vigilsec/vigil/networkpolicy/datapath/testpods"
)

// The client may reach the server on 80 (any protocol) and 82/TCP, never
// on 81; the server admits the client on 80 and 82. %s adds ports to the
// client's rule (a new version of the policy changes the entries of the
// server's identity in the client's map while sockets use them).
const churnPolicies = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: client-egress, namespace: x}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEndpoints: [{matchLabels: {app: server}}]
    toPorts: [{ports: [{port: "80", protocol: ANY}, {port: "82", protocol: TCP}%s]}]
  egressDeny:
  - toEndpoints: [{matchLabels: {app: server}}]
    toPorts: [{ports: [{port: "81", protocol: ANY}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server-ingress, namespace: x}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: 80}, {port: 82}]
`

// Policies that come and go during the churn: one for every peer of the
// client (its wildcard entries change, and the server's entries for port
// 80 go while it is in force: the wildcard's decide the same), one with a
// CIDR (what policies refer to changes: everything is compared again).
const churnWildcard = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-any, namespace: x}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress:
  - ports: [{port: 53, protocol: UDP}, {port: 80, protocol: TCP}, {port: 80, protocol: UDP}]
`

const churnCIDR = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: client-net, namespace: x}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toCIDR: [203.0.113.0/24]
`

func parsePolicies(t *testing.T, src string) []*networkpolicy.Policy {
	t.Helper()
	docs, err := manifest.Split("churn.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	res, err := networkpolicy.Parse(docs)
	if err != nil {
		t.Fatal(err)
	}
	return res.Policies
}

// TestPrivChurnKeepsVerdicts applies hundreds of changes (pods of new
// identities the client's rules select come, go and are relabelled; a pod
// with a cgroup comes, goes and changes identity; the client's policy gets
// new versions; a policy for every peer and one with a CIDR come and go)
// while the client connects to the server over and over: every connect to
// port 80 must pass, every one to 81 fail with EPERM, at every moment; a
// TCP connection opened before the churn must still carry data after it,
// and after a policy change that refuses new connections to its port.
func TestPrivChurnKeepsVerdicts(t *testing.T) {
	root := testpods.Require(t)
	cl := testpods.New(t, root)
	clientIP, serverIP := netip.MustParseAddr("198.18.0.11"), netip.MustParseAddr("198.18.0.12")
	client := cl.Add("x/client", []netip.Addr{clientIP}, true)
	server := cl.Add("x/server", []netip.Addr{serverIP}, true)
	other := cl.Add("x/other", []netip.Addr{netip.MustParseAddr("198.18.0.13")}, true)
	for _, r := range []string{server.Listen("tcp", 80), server.ListenEcho(82)} {
		if r != "ok" {
			t.Fatal(r)
		}
	}
	eps := map[string]*testpods.Endpoint{"x/client": client, "x/server": server, "x/other": other}
	pod := func(name string, labels map[string]string, ips ...netip.Addr) *networkpolicy.Pod {
		return &networkpolicy.Pod{Namespace: "x", Name: name, Labels: labels, ServiceAccount: "default", IPs: ips}
	}
	versions := [][]*networkpolicy.Policy{
		parsePolicies(t, fmt.Sprintf(churnPolicies, "")),
		parsePolicies(t, fmt.Sprintf(churnPolicies, `, {port: "1000", endPort: 2000, protocol: UDP}`)),
		parsePolicies(t, fmt.Sprintf(churnPolicies, `, {port: "83", protocol: TCP}, {port: "8080"}`)),
	}
	wildcard, cidr := parsePolicies(t, churnWildcard), parsePolicies(t, churnCIDR)

	src := &testpods.Workloads{}
	d := testpods.NewDatapath(t, root, src, -1)
	ctx := context.Background()
	var swaps, inPlace, applies int
	churning := false
	apply := func(res *networkpolicy.Resources) {
		t.Helper()
		slices.SortFunc(res.Pods, func(a, b *networkpolicy.Pod) int { return strings.Compare(a.Key(), b.Key()) })
		src.Set(res, eps)
		st, err := d.Apply(ctx, res)
		if err != nil {
			t.Fatal(err)
		}
		if !churning {
			return
		}
		applies++
		if st.PolicyMapsWritten > 0 {
			swaps++
		}
		if st.PolicyEntriesWritten+st.PolicyEntriesRemoved > 0 && st.PolicyMapsWritten == 0 {
			inPlace++
		}
	}
	base := []*networkpolicy.Pod{pod("client", map[string]string{"app": "client"}, clientIP), pod("server", map[string]string{"app": "server"}, serverIP)}
	apply(&networkpolicy.Resources{Pods: base, Policies: versions[0]})

	if r := client.Hold("conn", netip.AddrPortFrom(serverIP, 82)); r != testpods.Allowed {
		t.Fatalf("hold a connection to the server's port 82: %s", r)
	}
	watches := []struct {
		name, proto string
		port        uint16
		want        string
	}{
		{"u80", "connect", 80, testpods.Allowed},
		{"u81", "connect", 81, testpods.EPERM},
		{"t80", "tcp", 80, testpods.Allowed},
	}
	for _, w := range watches {
		if r := client.Watch(w.name, w.proto, netip.AddrPortFrom(serverIP, w.port), w.want); r != "ok" {
			t.Fatal(r)
		}
	}

	churning = true
	r := rand.New(rand.NewPCG(1, 2))
	remotes := map[string]*networkpolicy.Pod{}
	var otherPod *networkpolicy.Pod
	version, withWildcard, withCIDR := 0, false, false
	for i := 0; i < 300; i++ {
		switch k := r.IntN(8); k {
		case 0, 1:
			// A pod of another node (no cgroup): of the server's kind, of a
			// new identity; or of no kind the rules name.
			name := fmt.Sprintf("r%d", r.IntN(12))
			app := []string{"server", "worker"}[r.IntN(2)]
			remotes[name] = pod(name, map[string]string{"app": app, "v": fmt.Sprint(r.IntN(4))},
				netip.AddrFrom4([4]byte{198, 18, 1, byte(1 + r.IntN(40))}))
		case 2:
			for name := range remotes {
				delete(remotes, name)
				break
			}
		case 3:
			// A pod with a cgroup comes or goes, or changes identity: the
			// client's (its cgroup then maps to the client's map) or its own.
			if otherPod != nil && r.IntN(3) == 0 {
				otherPod = nil
			} else {
				otherPod = pod("other", map[string]string{"app": []string{"client", "worker"}[r.IntN(2)]}, netip.MustParseAddr("198.18.0.13"))
			}
		case 4, 5:
			version = (version + 1 + r.IntN(2)) % len(versions)
		case 6:
			withWildcard = !withWildcard
		case 7:
			withCIDR = !withCIDR
		}
		pods := slices.Clone(base)
		for _, p := range remotes {
			pods = append(pods, p)
		}
		if otherPod != nil {
			pods = append(pods, otherPod)
		}
		pols := slices.Clone(versions[version])
		if withWildcard {
			pols = append(pols, wildcard...)
		}
		if withCIDR {
			pols = append(pols, cidr...)
		}
		apply(&networkpolicy.Resources{Pods: pods, Policies: pols})
		time.Sleep(time.Millisecond)
	}
	for _, w := range watches {
		probes, different, first, err := client.Unwatch(w.name)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s to port %d: %d probes during %d applies", w.proto, w.port, probes, applies)
		if probes < 20 {
			t.Errorf("%s to port %d: only %d probes ran during the churn", w.proto, w.port, probes)
		}
		if different > 0 {
			t.Errorf("%s to port %d: %d of %d probes did not get %s (first: %s)", w.proto, w.port, different, probes, w.want, first)
		}
	}
	t.Logf("%d applies wrote entries in place, %d built maps", inPlace, swaps)
	if inPlace < applies/4 {
		t.Errorf("only %d of %d applies wrote entries in place", inPlace, applies)
	}
	if r := client.Held("conn"); r != testpods.Allowed {
		t.Errorf("the connection held through the churn: %s", r)
	}

	// Port 82 closed: new connections are refused, the held one goes on.
	closed := parsePolicies(t, strings.Replace(strings.Replace(fmt.Sprintf(churnPolicies, ""), `, {port: "82", protocol: TCP}`, "", 1), ", {port: 82}", "", 1))
	apply(&networkpolicy.Resources{Pods: base, Policies: closed})
	if r := client.Probe("tcp", netip.AddrPortFrom(serverIP, 82), 2*time.Second); r != testpods.EPERM {
		t.Errorf("a new connection to port 82 once the policy closes it: %s, want %s", r, testpods.EPERM)
	}
	if r := client.Held("conn"); r != testpods.Allowed {
		t.Errorf("the connection opened before the policy closed its port: %s, want it to go on", r)
	}
}
