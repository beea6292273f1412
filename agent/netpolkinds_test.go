package agent

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/internal/manifest"
	"github.com/vigilsec/vigil/networkpolicy"
)

// TestAgentKinds checks that the agent refuses, with their lines, the
// documents of its network-policy files that it would not use.
func TestAgentKinds(t *testing.T) {
	src := `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: shop}
spec: {podSelector: {}}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop}
spec: {containers: [{name: c, image: i}]}
`
	docs, err := manifest.Split("np.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	res, err := networkpolicy.Parse(docs)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range manifest.AsErrors("np.yaml", agentKinds(res)) {
		got = append(got, e.Error())
	}
	want := []string{
		"np.yaml:11: kind: Service web is not a network policy; the agent's network-policy files hold NetworkPolicy, CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy and Namespace documents",
		"np.yaml:14: Pod shop/web: the agent takes pods from the node (CRI, Kubernetes, Workload files), not from network-policy files; remove it",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}
