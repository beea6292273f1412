package networkpolicy

import (
	"net/http"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const httpHead = cnpHead + "  ingress:\n  - toPorts:\n    - ports:\n      - {port: \"80\", protocol: TCP}\n      rules:\n        http:\n"

func TestParseHTTPErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"invalid path regex", httpHead + "        - {path: \"/v1/(\"}\n",
			[]string{"p.yaml:14: spec.ingress[0].toPorts[0].rules.http[0].path: invalid regular expression \"/v1/(\": error parsing regexp: missing closing ): `/v1/(`"}},
		{"invalid method regex", httpHead + "        - {method: \"GET|(\"}\n",
			[]string{"p.yaml:14: spec.ingress[0].toPorts[0].rules.http[0].method: invalid regular expression \"GET|(\": error parsing regexp: missing closing ): `GET|(`"}},
		{"method not a token", httpHead + "        - {method: \"GET /\"}\n",
			[]string{`p.yaml:14: spec.ingress[0].toPorts[0].rules.http[0].method: method "GET /": ' ' is not a character of an HTTP method (a token)`}},
		{"header without name", httpHead + "        - headers: [\": yes\"]\n",
			[]string{`p.yaml:14: spec.ingress[0].toPorts[0].rules.http[0].headers[0]: header rule ": yes" has no header name (want "Name" or "Name: value")`}},
		{"header name not a token", httpHead + "        - headers: [\"X Y: 1\"]\n",
			[]string{`p.yaml:14: spec.ingress[0].toPorts[0].rules.http[0].headers[0]: header name "X Y": ' ' is not allowed in a header name (a token)`}},
		{"headerMatches", httpHead + "        - headerMatches: [{name: a}]\n",
			[]string{`p.yaml:14: spec.ingress[0].toPorts[0].rules.http[0].headerMatches: headerMatches (use headers) is not supported yet`}},
		{"named port", cnpHead + "  ingress:\n  - toPorts:\n    - ports:\n      - {port: http}\n      rules:\n        http: [{method: GET}]\n",
			[]string{`p.yaml:11: spec.ingress[0].toPorts[0].ports[0].port: rules.http needs a port number, not the named port "http"`}},
		{"udp", cnpHead + "  ingress:\n  - toPorts:\n    - ports:\n      - {port: \"80\", protocol: UDP}\n      rules:\n        http: [{method: GET}]\n",
			[]string{`p.yaml:11: spec.ingress[0].toPorts[0].ports[0].protocol: rules.http needs protocol TCP (or ANY), not UDP`}},
		{"range", cnpHead + "  ingress:\n  - toPorts:\n    - ports:\n      - {port: \"80\", endPort: 90, protocol: TCP}\n      rules:\n        http: [{method: GET}]\n",
			[]string{`p.yaml:11: spec.ingress[0].toPorts[0].ports[0].endPort: rules.http needs one port, not the range 80-90`}},
		{"deny", cnpHead + "  ingressDeny:\n  - toPorts:\n    - ports:\n      - {port: \"80\", protocol: TCP}\n      rules:\n        http: [{method: GET}]\n",
			[]string{`p.yaml:13: spec.ingressDeny[0].toPorts[0].rules.http: rules.http applies to allow rules only (ingress or egress, not ingressDeny or egressDeny)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got := parseString(t, tt.src)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHTTPRuleMatches(t *testing.T) {
	src := httpHead + "        - {method: POST, path: /v1/request-landing}\n" +
		"        - {method: \"GET|HEAD\", path: \"/public/.*\", host: \"(www\\\\.)?example\\\\.com\", headers: [X-Token, \"X-Team: blue\"]}\n"
	res, errs := parseString(t, src)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	rules := res.Policies[0].Sections[0].Rules[0].Ports[0].HTTP
	if len(rules) != 2 {
		t.Fatalf("rules: %v", rules)
	}
	h := HTTPRules{Rules: rules}
	hdr := http.Header{"X-Token": {"t"}, "X-Team": {"red", "blue"}}
	tests := []struct {
		req  Request
		want bool
	}{
		{Request{Method: "POST", Target: "/v1/request-landing"}, true},
		{Request{Method: "PUT", Target: "/v1/request-landing"}, false},
		{Request{Method: "POST", Target: "/v1/request-landing/x"}, false},
		{Request{Method: "POST", Target: "/v1/request-landing?x=1"}, false},
		{Request{Method: "POSTX", Target: "/v1/request-landing"}, false},
		{Request{Method: "PUT", Target: "/v1/exhaust-port"}, false},
		{Request{Method: "GET", Target: "/public/a", Host: "example.com", Header: hdr}, true},
		{Request{Method: "HEAD", Target: "/public/a", Host: "www.example.com", Header: hdr}, true},
		{Request{Method: "GET", Target: "/public/a", Host: "wwwXexample.com", Header: hdr}, false},
		{Request{Method: "GET", Target: "/public/a", Host: "example.com", Header: http.Header{"X-Token": {"t"}}}, false},
		{Request{Method: "GET", Target: "/public/a", Host: "example.com", Header: http.Header{"X-Team": {"blue"}}}, false},
	}
	for _, tt := range tests {
		if got := h.Allows(&tt.req); got != tt.want {
			t.Errorf("%+v: allowed %v, want %v", tt.req, got, tt.want)
		}
	}
}

// TestHTTPFor: the deathstar's L7 rule governs port 80 from empire ships;
// another rule opening port 80 without rules.http lifts it, as in Cilium.
func TestHTTPFor(t *testing.T) {
	pods := "---\napiVersion: v1\nkind: Pod\nmetadata: {name: ds, namespace: x, labels: {class: deathstar}}\nspec: {containers: [{name: c, image: i}]}\nstatus: {podIP: 10.0.0.1}\n" +
		"---\napiVersion: v1\nkind: Pod\nmetadata: {name: tie, namespace: x, labels: {org: empire}}\nspec: {containers: [{name: c, image: i}]}\nstatus: {podIP: 10.0.0.2}\n"
	l7 := "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: l7, namespace: x}\nspec:\n  endpointSelector: {matchLabels: {class: deathstar}}\n" +
		"  ingress:\n  - fromEndpoints: [{matchLabels: {org: empire}}]\n    toPorts:\n    - ports: [{port: \"80\", protocol: TCP}]\n      rules:\n        http: [{method: POST, path: /v1/request-landing}]\n"
	l4 := "---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: l4, namespace: x}\nspec:\n  endpointSelector: {matchLabels: {class: deathstar}}\n" +
		"  ingress:\n  - toPorts:\n    - ports: [{port: \"80\", protocol: TCP}]\n"
	for _, tt := range []struct {
		name     string
		src      string
		governed bool
	}{{"l7 only", l7, true}, {"l7 and l4", l7 + l4, false}} {
		t.Run(tt.name, func(t *testing.T) {
			res, errs := parseString(t, tt.src+pods)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			e, err := Compile(res, NewAllocator())
			if err != nil {
				t.Fatal(err)
			}
			from, to := e.Address(netip.MustParseAddr("10.0.0.2")), e.Address(netip.MustParseAddr("10.0.0.1"))
			r := e.Check(from, to, ProtoTCP, 80)
			h := HTTPFor(r.Ingress, 80)
			if (h != nil) != tt.governed {
				t.Fatalf("governed %v, want %v (%+v)", h != nil, tt.governed, r.Ingress)
			}
			if h == nil {
				return
			}
			if got := h.Refs[0].String(); got != "CiliumNetworkPolicy x/l7 spec.ingress[0] (p.yaml:7)" {
				t.Errorf("ref %s", got)
			}
			if !h.Allows(&Request{Method: "POST", Target: "/v1/request-landing"}) || h.Allows(&Request{Method: "PUT", Target: "/v1/exhaust-port"}) {
				t.Error("wrong requests allowed")
			}
			if got := HTTPPorts(res.Policies); !cmp.Equal(got, []uint16{80}) {
				t.Errorf("ports %v", got)
			}
		})
	}
}

func TestHTTPRedirects(t *testing.T) {
	pods := "---\napiVersion: v1\nkind: Pod\nmetadata: {name: ds, namespace: x, labels: {class: deathstar}}\nspec: {containers: [{name: c, image: i}]}\nstatus: {podIP: 10.0.0.1}\n" +
		"---\napiVersion: v1\nkind: Pod\nmetadata: {name: tie, namespace: x, labels: {org: empire}}\nspec: {containers: [{name: c, image: i}]}\nstatus: {podIP: 10.0.0.2}\n" +
		"---\napiVersion: v1\nkind: Pod\nmetadata: {name: xwing, namespace: x, labels: {org: alliance}}\nspec: {containers: [{name: c, image: i}]}\nstatus: {podIP: 10.0.0.3}\n"
	l7 := "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: l7, namespace: x}\nspec:\n  endpointSelector: {matchLabels: {class: deathstar}}\n" +
		"  ingress:\n  - fromEndpoints: [{matchLabels: {org: empire}}]\n    toPorts:\n    - ports: [{port: \"80\", protocol: TCP}]\n      rules:\n        http: [{method: POST, path: /v1/request-landing}]\n"
	res, errs := parseString(t, l7+pods)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	e, err := Compile(res, NewAllocator())
	if err != nil {
		t.Fatal(err)
	}
	tie, _ := e.Pod("x/tie")
	ds := e.Address(netip.MustParseAddr("10.0.0.1"))
	want := []HTTPRedirect{{Local: tie.Local, Remote: ds.Identity, Port: 80}}
	// The xwing is denied at L3/L4 (never proxied); the deathstar itself
	// is not selected by the rule's peers.
	if diff := cmp.Diff(want, e.HTTPRedirects()); diff != "" {
		t.Errorf("redirects (-want +got):\n%s", diff)
	}
}

// TestHTTPRedirectsEgress: the client's own egress rules.http governs its
// connections to the CIDR they name, and only on that port.
func TestHTTPRedirectsEgress(t *testing.T) {
	src := "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: api, namespace: x}\nspec:\n  endpointSelector: {matchLabels: {org: empire}}\n" +
		"  egress:\n  - toCIDR: [192.0.2.0/24]\n    toPorts:\n    - ports: [{port: \"8080\", protocol: TCP}]\n      rules:\n        http: [{method: GET, path: \"/v1/.*\"}]\n" +
		"    - ports: [{port: \"443\", protocol: TCP}]\n" +
		"---\napiVersion: v1\nkind: Pod\nmetadata: {name: tie, namespace: x, labels: {org: empire}}\nspec: {containers: [{name: c, image: i}]}\nstatus: {podIP: 10.0.0.2}\n"
	res, errs := parseString(t, src)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	e, err := Compile(res, NewAllocator())
	if err != nil {
		t.Fatal(err)
	}
	tie, _ := e.Pod("x/tie")
	api := e.Address(netip.MustParseAddr("192.0.2.7"))
	want := []HTTPRedirect{{Local: tie.Local, Remote: api.Identity, Port: 8080}}
	if diff := cmp.Diff(want, e.HTTPRedirects()); diff != "" {
		t.Errorf("redirects (-want +got):\n%s", diff)
	}
	r := e.Check(tie, api, ProtoTCP, 8080)
	h := HTTPFor(r.Egress, 8080)
	if h == nil || !h.Allows(&Request{Method: "GET", Target: "/v1/ships"}) || h.Allows(&Request{Method: "DELETE", Target: "/v1/ships"}) {
		t.Errorf("egress rules %+v", h)
	}
	if HTTPFor(e.Check(tie, api, ProtoTCP, 443).Egress, 443) != nil {
		t.Error("port 443 has no rules.http")
	}
}
