package agent

import (
	"strings"
	"testing"
)

// TestClusterPolicyDocsKeepLastValid: a policy object from the cluster
// edited into a version that does not parse is refused, with the field
// named, and its last valid version stays in force until a valid one
// comes or the object goes.
func TestClusterPolicyDocsKeepLastValid(t *testing.T) {
	const src = "k8s:cilium.io/CiliumNetworkPolicy/shop/db"
	doc := func(from string) []byte {
		return []byte("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: db, namespace: shop}\n" +
			"spec:\n  endpointSelector: {matchLabels: {app: db}}\n  ingress:\n  - fromEndpoints:" + from + "\n")
	}
	c := &clusterPolicyDocs{docs: map[string]*clusterDoc{}}
	peers := func() string {
		t.Helper()
		pols, refused := c.policies()
		var out []string
		for _, p := range pols {
			out = append(out, p.Namespace+"/"+p.Name)
		}
		for s, err := range refused {
			out = append(out, "refused "+s+": "+err.Error())
		}
		return strings.Join(out, "; ")
	}
	c.set(src, doc("\n    - matchLabels: {app: web}"))
	if got := peers(); got != "shop/db" {
		t.Fatalf("valid version: %q", got)
	}
	c.set(src, doc(" web"))
	got := peers()
	if !strings.HasPrefix(got, "shop/db; refused "+src+": ") || !strings.Contains(got, "spec.ingress[0].fromEndpoints") {
		t.Fatalf("invalid version: %q, want the last valid policy and the error naming spec.ingress[0].fromEndpoints", got)
	}
	if got := peers(); got != "shop/db" {
		t.Fatalf("the refusal is reported once, the policy stays: %q", got)
	}
	c.set(src, nil)
	if got := peers(); got != "" {
		t.Fatalf("removed: %q", got)
	}
}
