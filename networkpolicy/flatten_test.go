package networkpolicy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/vigilsec/vigil/internal/manifest"
)

// randomManifests writes a random but valid cluster: namespaces, pods with
// named ports and addresses, and Kubernetes and Cilium policies using every
// supported feature.
func randomManifests(r *rand.Rand) string {
	var b strings.Builder
	pick := func(list ...string) string { return list[r.IntN(len(list))] }
	nss := []string{"n0", "n1", "n2"}
	for _, ns := range nss {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n  labels: {team: %s}\n", ns, pick("red", "blue"))
	}
	nPods := 2 + r.IntN(8)
	for i := 0; i < nPods; i++ {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p%d\n  namespace: %s\n  labels: {app: %s, tier: %s}\n",
			i, pick(nss...), pick("a", "b", "c"), pick("x", "z"))
		fmt.Fprintf(&b, "spec:\n  containers:\n  - name: c\n    image: i\n    ports:\n")
		fmt.Fprintf(&b, "    - {name: web, containerPort: %s, protocol: %s}\n", pick("80", "8080", "81"), pick("TCP", "UDP"))
		fmt.Fprintf(&b, "    - {name: dns, containerPort: 53, protocol: UDP}\n")
		if r.IntN(4) > 0 {
			fmt.Fprintf(&b, "status:\n  podIP: 198.18.%d.%d\n", r.IntN(2), 1+r.IntN(60))
		}
	}
	selector := func(indent string) string {
		switch r.IntN(4) {
		case 0:
			return "{}"
		case 1:
			return fmt.Sprintf("\n%smatchLabels: {app: %s}", indent, pick("a", "b", "c"))
		case 2:
			return fmt.Sprintf("\n%smatchExpressions:\n%s- {key: tier, operator: %s, values: [%s]}", indent, indent, pick("In", "NotIn"), pick("x", "z"))
		}
		return fmt.Sprintf("\n%smatchExpressions:\n%s- {key: app, operator: %s}", indent, indent, pick("Exists", "DoesNotExist"))
	}
	cidr := func() (string, string) {
		switch r.IntN(4) {
		case 0:
			return "198.18.0.0/23", "198.18.0.0/26"
		case 1:
			return "198.18.0.0/24", fmt.Sprintf("198.18.0.%d/32", 1+r.IntN(60))
		case 2:
			return "203.0.113.0/24", "203.0.113.128/25"
		}
		return "0.0.0.0/0", "198.18.1.0/24"
	}
	k8sPorts := func() string {
		var out []string
		for n := r.IntN(3); n > 0; n-- {
			switch r.IntN(5) {
			case 0:
				out = append(out, fmt.Sprintf("{port: %s, protocol: %s}", pick("80", "81", "53", "8080"), pick("TCP", "UDP", "SCTP")))
			case 1:
				out = append(out, fmt.Sprintf("{port: %s, endPort: %s}", pick("80", "1"), pick("81", "1024", "65535")))
			case 2:
				out = append(out, fmt.Sprintf("{port: %s, protocol: %s}", pick("web", "dns"), pick("TCP", "UDP")))
			case 3:
				out = append(out, fmt.Sprintf("{protocol: %s}", pick("TCP", "UDP")))
			default:
				out = append(out, "{port: 8000, endPort: 8100, protocol: UDP}")
			}
		}
		if len(out) == 0 {
			return ""
		}
		return "\n    ports: [" + strings.Join(out, ", ") + "]"
	}
	k8sPeers := func(key string) string {
		if r.IntN(5) == 0 {
			return ""
		}
		var out []string
		for n := 1 + r.IntN(2); n > 0; n-- {
			switch r.IntN(4) {
			case 0:
				out = append(out, "    - podSelector: "+selector("        "))
			case 1:
				out = append(out, "    - namespaceSelector:\n        matchLabels: {team: "+pick("red", "blue")+"}")
			case 2:
				out = append(out, "    - namespaceSelector: {}\n      podSelector: "+selector("        "))
			default:
				c, ex := cidr()
				out = append(out, fmt.Sprintf("    - ipBlock: {cidr: %s, except: [%s]}", c, ex))
			}
		}
		return "\n    " + key + ":\n" + strings.Join(out, "\n")
	}
	k8sRule := func(body string) string {
		if body == "" {
			return "  - {}\n"
		}
		return "  - " + strings.TrimPrefix(body, "\n    ") + "\n"
	}
	mode := func() string {
		if r.IntN(4) == 0 {
			return "\n  annotations: {vigil.dev/policy-mode: audit}"
		}
		return ""
	}
	for i := r.IntN(5); i > 0; i-- {
		fmt.Fprintf(&b, "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: np%d\n  namespace: %s%s\nspec:\n  podSelector: %s\n",
			i, pick(nss...), mode(), selector("    "))
		fmt.Fprintf(&b, "  policyTypes: [%s]\n", pick("Ingress", "Egress", "Ingress, Egress"))
		fmt.Fprintf(&b, "  ingress:\n")
		for n := r.IntN(3); n > 0; n-- {
			b.WriteString(k8sRule(k8sPeers("from") + k8sPorts()))
		}
		fmt.Fprintf(&b, "  egress:\n")
		for n := r.IntN(3); n > 0; n-- {
			b.WriteString(k8sRule(k8sPeers("to") + k8sPorts()))
		}
	}
	ciliumRule := func(dir string) string {
		from := map[string]string{"ingress": "from", "egress": "to"}[dir]
		var parts []string
		switch r.IntN(6) {
		case 0:
			parts = append(parts, fmt.Sprintf("%sEndpoints: [{matchLabels: {app: %s}}]", from, pick("a", "b", "c")))
		case 1:
			parts = append(parts, fmt.Sprintf("%sEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: %s}}]", from, pick(nss...)))
		case 2:
			parts = append(parts, fmt.Sprintf("%sEntities: [%s]", from, pick("world", "cluster", "all", "host")))
		case 3:
			c, ex := cidr()
			parts = append(parts, fmt.Sprintf("%sCIDRSet: [{cidr: %s, except: [%s]}]", from, c, ex))
		case 4:
			parts = append(parts, fmt.Sprintf("%sCIDR: [%s]", from, pick("198.18.0.0/25", "203.0.113.0/24")))
		}
		if r.IntN(2) == 0 {
			first, end := pick("80", "1", "0"), r.IntN(2)*1024
			if first == "0" {
				end = 0
			}
			parts = append(parts, fmt.Sprintf("toPorts: [{ports: [{port: %q, endPort: %d, protocol: %s}, {port: %s}]}]",
				first, end, pick("TCP", "UDP", "ANY"), pick("53", "web", "dns")))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	for i := r.IntN(4); i > 0; i-- {
		kind, ns := "CiliumNetworkPolicy", "\n  namespace: "+pick(nss...)
		if r.IntN(3) == 0 {
			kind, ns = "CiliumClusterwideNetworkPolicy", ""
		}
		fmt.Fprintf(&b, "---\napiVersion: cilium.io/v2\nkind: %s\nmetadata:\n  name: cnp%d%s%s\nspec:\n  endpointSelector: %s\n", kind, i, ns, mode(), selector("    "))
		for _, sec := range []string{"ingress", "ingressDeny", "egress", "egressDeny"} {
			n := r.IntN(3)
			if n == 0 {
				continue
			}
			fmt.Fprintf(&b, "  %s:\n", sec)
			for ; n > 0; n-- {
				fmt.Fprintf(&b, "  - %s\n", ciliumRule(strings.TrimSuffix(sec, "Deny")))
			}
		}
		if r.IntN(4) == 0 {
			fmt.Fprintf(&b, "  enableDefaultDeny: {ingress: %v, egress: %v}\n", r.IntN(2) == 0, r.IntN(2) == 0)
		}
	}
	return b.String()
}

func compileRandom(t testing.TB, r *rand.Rand) (*Engine, string) {
	t.Helper()
	src := randomManifests(r)
	docs, err := manifest.Split("random.yaml", []byte(src))
	if err != nil {
		t.Fatalf("%v\n%s", err, src)
	}
	res, err := Parse(docs)
	if err != nil {
		t.Fatalf("generated manifests must be valid: %v\n%s", err, src)
	}
	res.HostIPs = []netip.Addr{netip.MustParseAddr("198.18.1.254")}
	e, err := Compile(res, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e, src
}

// checkAgreement queries the flattened tables the way the BPF programs do
// and compares every answer with Decide.
func checkAgreement(t testing.TB, e *Engine, r *rand.Rand, queries int, src string) {
	t.Helper()
	tables := e.Flatten()
	var remotes []uint32
	for _, id := range e.Identities() {
		remotes = append(remotes, id.ID)
	}
	remotes = append(remotes, IdentityNone, 999999)
	locals := e.LocalIdentities()
	if len(locals) == 0 {
		return
	}
	ports := []uint16{0, 1, 52, 53, 54, 79, 80, 81, 82, 1023, 1024, 1025, 7999, 8000, 8080, 8100, 8101, 65534, 65535}
	protos := []Protocol{ProtoTCP, ProtoUDP, ProtoSCTP, 1, 58}
	for i := 0; i < queries; i++ {
		local := locals[r.IntN(len(locals))]
		dir := Direction(1 + r.IntN(2))
		remote := remotes[r.IntN(len(remotes))]
		proto := protos[r.IntN(len(protos))]
		port := ports[r.IntN(len(ports))]
		if r.IntN(3) == 0 {
			port = uint16(r.IntN(65536))
		}
		qport := port
		if !hasPorts(proto) {
			qport = 0
		}
		d := e.Decide(local, dir, remote, proto, qport)
		want := PolicyEntry{Verdict: d.Verdict, Reason: d.Reason, Rule: d.Rule()}
		if got := tables.Lookup(local, dir, remote, proto, port); got != want {
			t.Fatalf("local %d %s remote %d %s/%d: tables %+v, Decide %+v\nmanifests:\n%s", local, dir, remote, proto, port, got, want, src)
		}
	}
	for i := 0; i < queries/10; i++ {
		var ip netip.Addr
		switch r.IntN(4) {
		case 3:
			ip = netip.AddrFrom4([4]byte{127, 0, 0, byte(r.IntN(256))})
		case 0:
			ip = netip.AddrFrom4([4]byte{198, 18, byte(r.IntN(2)), byte(r.IntN(256))})
		case 1:
			ip = netip.AddrFrom4([4]byte{203, 0, 113, byte(r.IntN(256))})
		default:
			ip = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(r.IntN(256))})
		}
		got, ok := tables.LookupIP(ip)
		if want := e.IdentityOf(ip); !ok || got != want {
			t.Fatalf("ipcache %s: tables %d (found %v), engine %d", ip, got, ok, want)
		}
	}
}

// TestFlattenAgreesWithDecide is the property test of the datapath
// compiler: on random clusters and random queries, the lookup algorithm of
// the BPF programs over the flattened maps gives exactly Decide's answer.
func TestFlattenAgreesWithDecide(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 50
	}
	for seed := 0; seed < n; seed++ {
		r := rand.New(rand.NewPCG(uint64(seed), 7))
		e, src := compileRandom(t, r)
		checkAgreement(t, e, r, 400, src)
	}
}

func FuzzFlattenAgreesWithDecide(f *testing.F) {
	for _, s := range []uint64{1, 2, 3, 42} {
		f.Add(s, s*31)
	}
	f.Fuzz(func(t *testing.T, a, b uint64) {
		r := rand.New(rand.NewPCG(a, b))
		e, src := compileRandom(t, r)
		checkAgreement(t, e, r, 300, src)
	})
}

func TestForPrefixes(t *testing.T) {
	tests := []struct {
		first, end int
		want       string
	}{
		{0, 65536, "0/0"},
		{80, 81, "80/16"},
		{80, 82, "80/15"},
		{80, 83, "80/15 82/16"},
		{1, 1025, "1/16 2/15 4/14 8/13 16/12 32/11 64/10 128/9 256/8 512/7 1024/16"},
		{65535, 65536, "65535/16"},
	}
	for _, tt := range tests {
		var got []string
		forPrefixes(tt.first, tt.end, func(port uint16, bits uint32) { got = append(got, fmt.Sprintf("%d/%d", port, bits)) })
		if strings.Join(got, " ") != tt.want {
			t.Errorf("forPrefixes(%d, %d) = %s, want %s", tt.first, tt.end, strings.Join(got, " "), tt.want)
		}
	}
}
