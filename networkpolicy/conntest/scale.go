package conntest

import (
	"fmt"
	"strings"
)

// ScaleManifests writes a cluster for benchmarks: `identities` pods in
// namespace bench with distinct labels (each its own identity, address
// 198.18.x.y, pod i at 198.18.(i/250).(1+i%250)), and a client pod
// (198.19.0.1) whose egress policy has `rules` rules, rule i allowing pod
// i%identities on UDP port 1000+i/identities.
func ScaleManifests(identities, rules int) string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Pod\nmetadata: {name: client, namespace: bench, labels: {role: client}}\nspec: {containers: [{name: c, image: i}]}\nstatus: {podIP: 198.19.0.1}\n")
	for i := 0; i < identities; i++ {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Pod\nmetadata: {name: p%d, namespace: bench, labels: {id: \"i%d\"}}\nspec: {containers: [{name: c, image: i}]}\nstatus: {podIP: 198.18.%d.%d}\n",
			i, i, i/250, 1+i%250)
	}
	b.WriteString("---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: client-egress, namespace: bench}\nspec:\n  podSelector: {matchLabels: {role: client}}\n  policyTypes: [Egress]\n  egress:\n")
	for i := 0; i < rules; i++ {
		fmt.Fprintf(&b, "  - to: [{podSelector: {matchLabels: {id: \"i%d\"}}}]\n    ports: [{port: %d, protocol: UDP}]\n", i%identities, 1000+i/identities)
	}
	return b.String()
}
