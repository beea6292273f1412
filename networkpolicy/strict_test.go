package networkpolicy

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/internal/manifest"
)

// TestParseStrict checks the inputs that used to read differently from how
// they look: duplicate keys, YAML 1.1 booleans in selectors, Lists, unknown
// policy kinds, exported objects with status.
func TestParseStrict(t *testing.T) {
	tests := []struct {
		name     string
		src      string
		want     []string
		policies int
	}{
		{"selector moved by a duplicate key", npHead + "  podSelector:\n    matchLabels: {app: db}\n  podSelector:\n    matchLabels: {app: web}\n",
			[]string{"p.yaml:9: spec.podSelector: duplicate key (first at line 7)"}, 0},
		{"YAML 1.1 boolean in matchLabels", npHead + "  podSelector:\n    matchLabels: {flag: yes}\n",
			[]string{`p.yaml:8: spec.podSelector.matchLabels.flag: yes is the boolean true in YAML 1.1 (kubectl, the API server), not a string: quote it ("yes")`}, 0},
		{"kubectl get -o yaml", "apiVersion: v1\nkind: List\nmetadata: {resourceVersion: \"\"}\nitems:\n- " +
			"apiVersion: networking.k8s.io/v1\n  kind: NetworkPolicy\n  metadata: {name: a, namespace: x, uid: u, resourceVersion: \"1\", generation: 2}\n  spec: {podSelector: {}}\n  status: {}\n" +
			"- apiVersion: cilium.io/v2\n  kind: CiliumNetworkPolicy\n  metadata: {name: c, namespace: x}\n  spec: {endpointSelector: {}}\n  status: {derivativePolicies: {}}\n",
			nil, 2},
		{"typed list", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicyList\nitems:\n- metadata: {name: a, namespace: x}\n  spec: {podSelector: {}, policyTypes: [Sideways]}\n",
			[]string{`p.yaml:5: items[0].spec.policyTypes[0]: unknown policy type "Sideways" (want Ingress or Egress)`}, 0},
		{"unknown policy kind", "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: a}\n",
			[]string{"p.yaml:2: kind: policy.networking.k8s.io/v1alpha1 AdminNetworkPolicy is a policy kind Vigil does not enforce (supported: NetworkPolicy networking.k8s.io/v1, CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy cilium.io/v2)"}, 0},
		{"every problem of a document", npHead + "  podSelector: {}\n  podSelector: {}\n  ingress:\n  - ports: [{port: 0}]\n  egress:\n  - to: [{ipBlock: {cidr: 10.0.0.1/8}}]\n",
			[]string{
				"p.yaml:8: spec.podSelector: duplicate key (first at line 7)",
				"p.yaml:10: spec.ingress[0].ports[0].port: port 0 is out of range (1-65535)",
				`p.yaml:12: spec.egress[0].to[0].ipBlock.cidr: invalid CIDR "10.0.0.1/8": host bits are set (did you mean 10.0.0.0/8?)`,
			}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, got := parseString(t, tt.src)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			if res != nil && len(res.Policies) != tt.policies {
				t.Errorf("%d policies, want %d", len(res.Policies), tt.policies)
			}
		})
	}
}

func TestNamedPortWarnings(t *testing.T) {
	src := npHead + "  podSelector: {}\n  ingress:\n  - ports: [{port: http}, {port: dns, protocol: UDP}, {port: metrics}]\n---\n" +
		"apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x}\nspec:\n  containers:\n  - name: c\n    image: i\n    ports: [{name: http, containerPort: 80}, {name: dns, containerPort: 53}]\n"
	res, errs := parseString(t, src)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	var got []string
	for _, w := range NamedPortWarnings(res.Policies, res.Pods) {
		got = append(got, w.Error())
	}
	want := []string{
		`p.yaml:9: spec.ingress[0].ports[1].port: no pod has a port named "dns" (UDP): the rule matches nothing on it`,
		`p.yaml:9: spec.ingress[0].ports[2].port: no pod has a port named "metrics" (TCP): the rule matches nothing on it`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
	_ = manifest.Errors{}
}
