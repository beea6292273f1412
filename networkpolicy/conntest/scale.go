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

// MatrixManifests writes a cluster for `vigil netpol matrix`: `pods` pods
// spread over ten namespaces (labels app, tier; a named port http on
// 8080/TCP; pod i at 10.(i/250).(i%250).1 when i is not a multiple of 7) and
// `policies` policies of every kind the engine knows: NetworkPolicies with
// pod, namespace and ipBlock peers, ports, ranges and named ports, egress
// rules, Cilium policies with deny rules and entities, and audit-mode
// policies. The same arguments always give the same text.
func MatrixManifests(pods, policies int) string {
	var b strings.Builder
	const namespaces = 10
	for n := 0; n < namespaces; n++ {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: ns%d, labels: {team: t%d, env: %s}}\n",
			n, n%3, []string{"prod", "dev"}[n%2])
	}
	for i := 0; i < pods; i++ {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Pod\nmetadata: {name: p%d, namespace: ns%d, labels: {app: a%d, tier: t%d}}\n",
			i, i%namespaces, i%25, i%4)
		b.WriteString("spec: {containers: [{name: c, image: i, ports: [{name: http, containerPort: 8080}]}]}\n")
		if i%7 != 0 {
			fmt.Fprintf(&b, "status: {podIP: 10.%d.%d.1}\n", i/250, i%250)
		}
	}
	for k := 0; k < policies; k++ {
		ns := k % namespaces
		mode := ""
		if k%11 == 5 {
			mode = ", annotations: {vigil.dev/policy-mode: audit}"
		}
		switch k % 4 {
		case 0, 1:
			fmt.Fprintf(&b, "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: np%d, namespace: ns%d%s}\nspec:\n", k, ns, mode)
			fmt.Fprintf(&b, "  podSelector: {matchLabels: {app: a%d}}\n  ingress:\n", k%25)
			fmt.Fprintf(&b, "  - from: [{podSelector: {matchLabels: {app: a%d}}}, {namespaceSelector: {matchLabels: {team: t%d}}, podSelector: {matchLabels: {tier: t%d}}}]\n",
				(k+3)%25, k%3, k%4)
			fmt.Fprintf(&b, "    ports: [{port: %d, protocol: TCP}, {port: http}]\n", []int{80, 443}[k%2])
			fmt.Fprintf(&b, "  - from: [{ipBlock: {cidr: 10.%d.0.0/16, except: [10.%d.%d.0/24]}}]\n    ports: [{port: 8000, endPort: 8100}]\n",
				k%2, k%2, k%250)
			if k%8 == 1 {
				fmt.Fprintf(&b, "  policyTypes: [Ingress, Egress]\n  egress:\n  - to: [{namespaceSelector: {matchLabels: {env: prod}}}]\n    ports: [{port: 53, protocol: UDP}, {port: 80}]\n")
			}
		case 2:
			fmt.Fprintf(&b, "---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: cnp%d, namespace: ns%d%s}\nspec:\n", k, ns, mode)
			fmt.Fprintf(&b, "  endpointSelector: {matchLabels: {tier: t%d}}\n", k%4)
			fmt.Fprintf(&b, "  ingress:\n  - fromEndpoints: [{matchLabels: {app: a%d}}]\n    toPorts: [{ports: [{port: \"80\", protocol: TCP}, {port: \"9090\"}]}]\n", (k+7)%25)
			fmt.Fprintf(&b, "  ingressDeny:\n  - fromEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: ns%d}}]\n    toPorts: [{ports: [{port: \"443\", protocol: TCP}]}]\n", (ns+1)%namespaces)
			fmt.Fprintf(&b, "  egress:\n  - toEntities: [cluster]\n  - toEndpoints: [{matchLabels: {app: a%d}}]\n", (k+1)%25)
		default:
			fmt.Fprintf(&b, "---\napiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: ccnp%d%s}\nspec:\n", k, mode)
			fmt.Fprintf(&b, "  endpointSelector: {matchLabels: {app: a%d, k8s:io.kubernetes.pod.namespace: ns%d}}\n", k%25, ns)
			fmt.Fprintf(&b, "  egressDeny:\n  - toEndpoints: [{matchLabels: {tier: t%d}}]\n    toPorts: [{ports: [{port: \"8080\", protocol: TCP}]}]\n", (k+2)%4)
			fmt.Fprintf(&b, "  egress:\n  - toCIDRSet: [{cidr: 0.0.0.0/0, except: [10.0.0.0/8]}]\n  - toEndpoints: [{}]\n    toPorts: [{ports: [{port: \"0\", protocol: ANY}]}]\n")
		}
	}
	return b.String()
}
