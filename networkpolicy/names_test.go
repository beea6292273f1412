package networkpolicy

import (
	"net/netip"
	"testing"

	"github.com/vigilsec/vigil/internal/manifest"
)

const fqdnPolicy = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: fqdn, namespace: x}
spec:
  endpointSelector: {matchLabels: {app: a}}
  egress:
  - toFQDNs:
    - matchName: api.example.com
    - matchPattern: "*.cdn.example.net"
    toPorts:
    - ports: [{port: "443", protocol: TCP}]
  - toFQDNs:
    - matchPattern: "*"
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
  - toEntities: [world]
    toPorts:
    - ports: [{port: "53", protocol: UDP}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: deny, namespace: x}
spec:
  endpointSelector: {matchLabels: {app: a}}
  egressDeny:
  - toCIDR: [203.0.113.66/32]
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {app: a}}
spec: {containers: [{name: c, image: i}]}
status: {podIP: 198.18.0.11}
`

func compileString(t *testing.T, src string) *Engine {
	t.Helper()
	docs, err := manifest.Split("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Parse(docs)
	if err != nil {
		t.Fatal(err)
	}
	e, err := Compile(res, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// toFQDNs allows the addresses of the names it matches on its ports only;
// a deny rule on an address wins over the names; the flattened tables
// decide as the engine does.
func TestFQDNVerdicts(t *testing.T) {
	e := compileString(t, fqdnPolicy)
	pod, err := e.Pod("x/a")
	if err != nil {
		t.Fatal(err)
	}
	ip := func(s string, names ...string) Endpoint {
		ep := e.Address(netip.MustParseAddr(s))
		ep.Names = names
		return ep
	}
	tests := []struct {
		name    string
		to      Endpoint
		port    uint16
		verdict Verdict
		reason  Reason
	}{
		{"matchName on its port", ip("203.0.113.10", "api.example.com"), 443, Allow, ReasonAllowedByRule},
		{"matchName, trailing dot and case", ip("203.0.113.10", "API.example.com."), 443, Allow, ReasonAllowedByRule},
		{"matchName on another port", ip("203.0.113.10", "api.example.com"), 8443, Deny, ReasonDefaultDeny},
		{"pattern", ip("203.0.113.20", "img.cdn.example.net"), 443, Allow, ReasonAllowedByRule},
		{"pattern stays in its label", ip("203.0.113.20", "a.img.cdn.example.net"), 443, Deny, ReasonDefaultDeny},
		{"match-all on port 80", ip("203.0.113.30", "anything.org"), 80, Allow, ReasonAllowedByRule},
		{"match-all not on 443", ip("203.0.113.30", "anything.org"), 443, Deny, ReasonDefaultDeny},
		{"no name", ip("203.0.113.10"), 443, Deny, ReasonDefaultDeny},
		{"one of two names", ip("203.0.113.10", "other.org", "api.example.com"), 443, Allow, ReasonAllowedByRule},
		{"deny rule wins", ip("203.0.113.66", "api.example.com"), 443, Deny, ReasonDeniedByRule},
	}
	tables := e.Flatten()
	for _, tt := range tests {
		r := e.Check(pod, tt.to, ProtoTCP, tt.port)
		if r.Verdict != tt.verdict || r.Egress.Reason != tt.reason {
			t.Errorf("%s: %s (%s), want %s (%s)\n%s", tt.name, r.Verdict, r.Egress.Reason, tt.verdict, tt.reason, r.Explain())
		}
		ids := e.Names().NameIdentities(tt.to.Names)
		got := tables.LookupNames(pod.Local, tt.to.Identity, ids, ProtoTCP, tt.port)
		if got.Verdict != r.Egress.Verdict || got.Reason != r.Egress.Reason || got.Rule != r.Egress.Rule() {
			t.Errorf("%s: tables decide %+v, the engine %s (%s) rule %d", tt.name, got, r.Egress.Verdict, r.Egress.Reason, r.Egress.Rule())
		}
	}
	// Every name matching the same patterns has one identity.
	a, _ := e.Names().Identity("x.cdn.example.net")
	b, _ := e.Names().Identity("y.cdn.example.net")
	c, _ := e.Names().Identity("api.example.com")
	if a != b || a == c || a == 0 || c == 0 {
		t.Errorf("identities of names: %d %d %d; want the first two equal and the third another", a, b, c)
	}
	if id, ok := e.Identity(c); !ok || id.String() != "fqdn:matchName:api.example.com,matchPattern:*" {
		t.Errorf("identity of api.example.com: %v", id)
	}
}

// The same patterns keep their identities across compilations with one
// allocator, so learned addresses stay valid when policies change.
func TestFQDNIdentitiesStable(t *testing.T) {
	docs, _ := manifest.Split("t.yaml", []byte(fqdnPolicy))
	res, err := Parse(docs)
	if err != nil {
		t.Fatal(err)
	}
	c := NewCompiler(nil)
	e1, _, err := c.Update(res)
	if err != nil {
		t.Fatal(err)
	}
	res2 := *res
	res2.Policies = nil
	for _, p := range res.Policies {
		if p.Name == "fqdn" {
			res2.Policies = append(res2.Policies, p)
		}
	}
	e2, _, err := c.Update(&res2)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"api.example.com", "x.cdn.example.net", "other.org"} {
		a, _ := e1.Names().Identity(n)
		b, _ := e2.Names().Identity(n)
		if a != b {
			t.Errorf("%s: identity %d, then %d", n, a, b)
		}
	}
}

const dnsRulePolicy = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: dns, namespace: x}
spec:
  endpointSelector: {matchLabels: {app: a}}
  egress:
  - toCIDR: [192.0.2.53/32]
    toPorts:
    - ports: [{port: "53", protocol: UDP}, {port: "53", protocol: TCP}]
      rules:
        dns:
        - matchPattern: "*.example.com"
        - matchName: api.example.org
  - toCIDR: [192.0.2.54/32]
    toPorts:
    - ports: [{port: "53", protocol: UDP}]
  - toFQDNs: [{matchPattern: "*.example.com"}]
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {app: a}}
spec: {containers: [{name: c, image: i}]}
status: {podIP: 198.18.0.11}
`

// rules.dns restricts the names a pod may look up at the servers and
// ports of its rule; a server another rule opens without rules.dns takes
// every name; the tables decide as the engine does.
func TestDNSRules(t *testing.T) {
	e := compileString(t, dnsRulePolicy)
	pod, _ := e.Pod("x/a")
	tables := e.Flatten()
	tests := []struct {
		server, name string
		port         uint16
		verdict      Verdict
		reason       Reason
	}{
		{"192.0.2.53", "www.example.com", 53, Allow, ReasonAllowedByRule},
		{"192.0.2.53", "API.example.org.", 53, Allow, ReasonAllowedByRule},
		{"192.0.2.53", "evil.org", 53, Deny, ReasonDNSRefused},
		{"192.0.2.53", "a.b.example.com", 53, Deny, ReasonDNSRefused},
		{"192.0.2.54", "evil.org", 53, Allow, ReasonAllowedByRule},
		{"192.0.2.55", "www.example.com", 53, Deny, ReasonDefaultDeny},
	}
	for _, tt := range tests {
		remote := e.IdentityOf(netip.MustParseAddr(tt.server))
		d := e.DecideQuery(pod.Local, remote, ProtoUDP, tt.port, tt.name)
		if d.Verdict != tt.verdict || d.Reason != tt.reason {
			t.Errorf("%s at %s: %s (%s), want %s (%s)", tt.name, tt.server, d.Verdict, d.Reason, tt.verdict, tt.reason)
		}
		v := tables.LookupQuery(e.Names(), pod.Local, remote, ProtoUDP, tt.port, tt.name)
		if v.Verdict != d.Verdict || v.Reason != d.Reason || v.Rule != d.Rule() {
			t.Errorf("%s at %s: tables %+v, engine %s (%s) rule %d", tt.name, tt.server, v, d.Verdict, d.Reason, d.Rule())
		}
	}
	// A name of both rules.dns and toFQDNs has an identity; one of
	// rules.dns only has none.
	// Queries over TCP cannot be checked: refused where names are
	// restricted.
	srv := e.IdentityOf(netip.MustParseAddr("192.0.2.53"))
	if d := e.Decide(pod.Local, Egress, srv, ProtoTCP, 53); d.Verdict != Deny || d.Reason != ReasonDNSRefused {
		t.Errorf("TCP 53 to a restricted server: %s (%s), want DENIED (%s)", d.Verdict, d.Reason, ReasonDNSRefused)
	}
	if v := tables.Lookup(pod.Local, Egress, srv, ProtoTCP, 53); v.Verdict != Deny || v.Reason != ReasonDNSRefused {
		t.Errorf("tables: TCP 53 to a restricted server: %+v", v)
	}
	if _, ok := e.Names().Identity("www.example.com"); !ok {
		t.Errorf("www.example.com has no identity")
	}
	if id, ok := e.Names().Identity("api.example.org"); ok {
		t.Errorf("api.example.org (rules.dns only) has identity %d", id)
	}
}
