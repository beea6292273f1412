package networkpolicy

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/internal/manifest"
)

func parseString(t testing.TB, src string) (*Resources, []string) {
	t.Helper()
	docs, err := manifest.Split("p.yaml", []byte(src))
	if err != nil {
		return nil, []string{err.Error()}
	}
	res, err := Parse(docs)
	var got []string
	for _, e := range manifest.AsErrors("p.yaml", err) {
		got = append(got, e.Error())
	}
	return res, got
}

const npHead = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p\n  namespace: x\nspec:\n"
const cnpHead = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: c\n  namespace: x\nspec:\n  endpointSelector: {}\n"

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"unknown field", npHead + "  podSelector: {}\n  ingres: []\n",
			[]string{`p.yaml:8: spec.ingres: unknown field "ingres" (did you mean "ingress"?)`}},
		{"port out of range", npHead + "  podSelector: {}\n  ingress:\n  - ports:\n    - port: 80\n    - port: 70000\n",
			[]string{`p.yaml:11: spec.ingress[0].ports[1].port: port 70000 is out of range (1-65535)`}},
		{"port name", npHead + "  podSelector: {}\n  ingress:\n  - ports:\n    - port: Not_A_Name\n",
			[]string{`p.yaml:10: spec.ingress[0].ports[0].port: invalid port name "Not_A_Name": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)`}},
		{"protocol", npHead + "  podSelector: {}\n  egress:\n  - ports:\n    - {port: 53, protocol: ICMP}\n",
			[]string{`p.yaml:10: spec.egress[0].ports[0].protocol: unknown protocol "ICMP" (want TCP, UDP or SCTP)`}},
		{"endPort below port", npHead + "  podSelector: {}\n  ingress:\n  - ports:\n    - {port: 90, endPort: 80}\n",
			[]string{`p.yaml:10: spec.ingress[0].ports[0].endPort: endPort 80 must be between port 90 and 65535`}},
		{"endPort named", npHead + "  podSelector: {}\n  ingress:\n  - ports:\n    - {port: http, endPort: 80}\n",
			[]string{`p.yaml:10: spec.ingress[0].ports[0].endPort: endPort cannot be used with a named port`}},
		{"bad cidr", npHead + "  podSelector: {}\n  ingress:\n  - from:\n    - ipBlock: {cidr: 10.0.0.1/8}\n",
			[]string{`p.yaml:10: spec.ingress[0].from[0].ipBlock.cidr: invalid CIDR "10.0.0.1/8": host bits are set (did you mean 10.0.0.0/8?)`}},
		{"except outside", npHead + "  podSelector: {}\n  ingress:\n  - from:\n    - ipBlock:\n        cidr: 192.0.2.0/24\n        except: [198.51.100.0/24]\n",
			[]string{`p.yaml:12: spec.ingress[0].from[0].ipBlock.except[0]: 198.51.100.0/24 must be a strict subset of 192.0.2.0/24`}},
		{"ipBlock with selector", npHead + "  podSelector: {}\n  ingress:\n  - from:\n    - ipBlock: {cidr: 192.0.2.0/24}\n      podSelector: {}\n",
			[]string{`p.yaml:10: spec.ingress[0].from[0]: ipBlock cannot be combined with podSelector or namespaceSelector`}},
		{"bad operator", npHead + "  podSelector:\n    matchExpressions:\n    - {key: app, operator: Equals, values: [a]}\n",
			[]string{`p.yaml:9: spec.podSelector.matchExpressions[0].operator: unknown operator "Equals" (want In, NotIn, Exists or DoesNotExist)`}},
		{"In without values", npHead + "  podSelector:\n    matchExpressions:\n    - {key: app, operator: In}\n",
			[]string{`p.yaml:9: spec.podSelector.matchExpressions[0].values: operator In needs at least one value`}},
		{"bad label value", npHead + "  podSelector:\n    matchLabels: {app: \"-bad\"}\n",
			[]string{`p.yaml:8: spec.podSelector.matchLabels.app: invalid label value "-bad": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`}},
		{"policy type", npHead + "  podSelector: {}\n  policyTypes: [Ingress, Sideways]\n",
			[]string{`p.yaml:8: spec.policyTypes[1]: unknown policy type "Sideways" (want Ingress or Egress)`}},
		{"policy mode", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p\n  annotations: {vigil.dev/policy-mode: dry-run}\nspec:\n  podSelector: {}\n",
			[]string{`p.yaml:5: metadata.annotations.vigil.dev/policy-mode: unknown policy mode "dry-run" (want audit or enforce)`}},
		{"fqdn long label", cnpHead + "  egress:\n  - toFQDNs:\n    - matchName: example.com\n    - matchName: " + strings.Repeat("a", 64) + ".com\n",
			[]string{`p.yaml:11: spec.egress[0].toFQDNs[1].matchName: "` + strings.Repeat("a", 64) + `.com": invalid DNS name: label "` + strings.Repeat("a", 64) + `" is 64 bytes long (at most 63)`}},
		{"fqdn long name", cnpHead + "  egress:\n  - toFQDNs:\n    - matchPattern: \"*." + strings.Repeat("abcdefghi.", 25) + "com\"\n",
			[]string{`p.yaml:10: spec.egress[0].toFQDNs[0].matchPattern: "*.` + strings.Repeat("abcdefghi.", 25) + `com": invalid DNS name: the name is 255 bytes long (at most 253)`}},
		{"fqdn bad character", cnpHead + "  egress:\n  - toFQDNs:\n    - matchPattern: \"api.(foo|bar).com\"\n",
			[]string{`p.yaml:10: spec.egress[0].toFQDNs[0].matchPattern: "api.(foo|bar).com": invalid DNS name: label "(foo|bar)" holds '(': DNS names of a policy hold only letters, digits, '-' and '_' and '*'`}},
		{"fqdn star in name", cnpHead + "  egress:\n  - toFQDNs:\n    - matchName: \"*.example.com\"\n",
			[]string{`p.yaml:10: spec.egress[0].toFQDNs[0].matchName: "*.example.com": invalid DNS name: label "*" holds '*': DNS names of a policy hold only letters, digits, '-' and '_'`}},
		{"fqdn empty label", cnpHead + "  egress:\n  - toFQDNs:\n    - matchPattern: \"*..example.com\"\n",
			[]string{`p.yaml:10: spec.egress[0].toFQDNs[0].matchPattern: "*..example.com": invalid DNS name: label 2 is empty (two dots in a row, or a leading dot)`}},
		{"fqdn both", cnpHead + "  egress:\n  - toFQDNs:\n    - {matchName: a.com, matchPattern: \"*.a.com\"}\n    - {}\n",
			[]string{`p.yaml:10: spec.egress[0].toFQDNs[0]: give matchName or matchPattern, not both`,
				`p.yaml:11: spec.egress[0].toFQDNs[1]: a toFQDNs selector needs matchName or matchPattern`}},
		{"fqdn with cidr", cnpHead + "  egress:\n  - toCIDR: [192.0.2.0/24]\n    toFQDNs:\n    - matchName: a.com\n",
			[]string{`p.yaml:10: spec.egress[0].toFQDNs: toFQDNs cannot be combined with toEndpoints, toCIDR, toCIDRSet or toEntities in one rule; write two rules`}},
		{"fqdn deny", cnpHead + "  egressDeny:\n  - toFQDNs:\n    - matchName: a.com\n",
			[]string{`p.yaml:9: spec.egressDeny[0].toFQDNs: toFQDNs cannot be used in egressDeny (DNS names only allow)`}},
		{"dns rule ingress", cnpHead + "  ingress:\n  - toPorts:\n    - ports: [{port: \"53\", protocol: ANY}]\n      rules:\n        dns: [{matchPattern: \"*\"}]\n",
			[]string{`p.yaml:12: spec.ingress[0].toPorts[0].rules.dns: rules.dns applies to egress allow rules only (which names a pod may look up)`}},
		{"dns rule bad pattern", cnpHead + "  egress:\n  - toPorts:\n    - ports: [{port: \"53\", protocol: UDP}]\n      rules:\n        dns:\n        - matchPattern: \"*.example.com\"\n        - matchName: \"a_b$.com\"\n",
			[]string{`p.yaml:14: spec.egress[0].toPorts[0].rules.dns[1].matchName: "a_b$.com": invalid DNS name: label "a_b$" holds '$': DNS names of a policy hold only letters, digits, '-' and '_'`}},
		{"dns rule empty", cnpHead + "  egress:\n  - toPorts:\n    - ports: [{port: \"53\", protocol: UDP}]\n      rules:\n        dns: []\n",
			[]string{`p.yaml:12: spec.egress[0].toPorts[0].rules.dns: rules.dns needs at least one matchName or matchPattern`}},
		{"cilium kafka", cnpHead + "  ingress:\n  - toPorts:\n    - ports: [{port: \"9092\"}]\n      rules:\n        kafka: [{topic: t}]\n",
			[]string{`p.yaml:12: spec.ingress[0].toPorts[0].rules.kafka: L7 Kafka rules (rules.kafka) is not supported yet`}},
		{"cilium entity", cnpHead + "  ingress:\n  - fromEntities: [world, kube-apiserver, planet]\n",
			[]string{
				`p.yaml:9: spec.ingress[0].fromEntities[1]: entity "kube-apiserver" is not supported yet (supported: world, world-ipv4, world-ipv6, host, cluster, all)`,
				`p.yaml:9: spec.ingress[0].fromEntities[2]: unknown entity "planet" (supported: world, world-ipv4, world-ipv6, host, cluster, all)`,
			}},
		{"cilium port", cnpHead + "  ingress:\n  - toPorts:\n    - ports:\n      - {port: \"80\"}\n      - {port: \"99999\", protocol: TCP}\n",
			[]string{`p.yaml:12: spec.ingress[0].toPorts[0].ports[1].port: port 99999 is out of range (1-65535)`}},
		{"cilium protocol", cnpHead + "  ingress:\n  - toPorts:\n    - ports:\n      - {port: \"80\", protocol: TPC}\n",
			[]string{`p.yaml:11: spec.ingress[0].toPorts[0].ports[0].protocol: unknown protocol "TPC" (want TCP, UDP, SCTP or ANY)`}},
		{"cilium cidr", cnpHead + "  egress:\n  - toCIDR: [not-a-cidr]\n",
			[]string{`p.yaml:9: spec.egress[0].toCIDR[0]: invalid CIDR "not-a-cidr" (want an address prefix such as 192.0.2.0/24 or 2001:db8::/32)`}},
		{"cilium reserved selector", cnpHead + "  ingress:\n  - fromEndpoints:\n    - matchLabels: {reserved:host: \"\"}\n",
			[]string{`p.yaml:10: spec.ingress[0].fromEndpoints[0].matchLabels.reserved:host: reserved labels are not supported in selectors (use fromEntities/toEntities)`}},
		{"cilium no selector", "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: c\nspec:\n  ingress: [{}]\n",
			[]string{`p.yaml:5: spec.endpointSelector: endpointSelector is required`}},
		{"cilium unknown field", cnpHead + "  ingress:\n  - fromEndpoint: []\n",
			[]string{`p.yaml:9: spec.ingress[0].fromEndpoint: unknown field "fromEndpoint" (did you mean "fromEndpoints"?)`}},
		{"wrong apiVersion", "apiVersion: networking.k8s.io/v1beta1\nkind: NetworkPolicy\nmetadata:\n  name: p\n",
			[]string{`p.yaml:1: apiVersion: unsupported apiVersion "networking.k8s.io/v1beta1" for NetworkPolicy (want networking.k8s.io/v1)`}},
		{"duplicate", npHead + "  podSelector: {}\n---\n" + npHead + "  podSelector: {}\n",
			[]string{`p.yaml:12: metadata.name: NetworkPolicy x/p is already declared at p.yaml:1`}},
		{"pod ip", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\nspec:\n  containers: [{name: c, image: i}]\nstatus:\n  podIP: 10.0.0.300\n",
			[]string{`p.yaml:8: status.podIP: invalid IP address "10.0.0.300"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, got := parseString(t, tt.src)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if res != nil && len(res.Policies) != 0 && tt.name != "duplicate" {
				t.Errorf("a policy with errors was kept: %v", res.Policies[0])
			}
		})
	}
}

// TestParseKeepsValidDocuments checks that one bad policy leaves the others
// applied and is itself not applied at all.
func TestParseKeepsValidDocuments(t *testing.T) {
	src := npHead + "  podSelector: {}\n  ingress:\n  - ports: [{port: 0}]\n---\n" +
		"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: good\n  namespace: x\nspec:\n  podSelector: {}\n"
	res, errs := parseString(t, src)
	if len(errs) != 1 || !strings.Contains(errs[0], "spec.ingress[0].ports[0].port") {
		t.Fatalf("errors = %q", errs)
	}
	if len(res.Policies) != 1 || res.Policies[0].Name != "good" {
		t.Fatalf("policies = %v, want only x/good", res.Policies)
	}
}

func TestParseDefaults(t *testing.T) {
	src := npHead + "  podSelector: {}\n  egress:\n  - ports: [{port: 53, protocol: UDP}]\n---\n" +
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - name: c\n        image: i\n        ports: [{name: http, containerPort: 8080}]\n---\n" +
		"apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {}\n"
	res, errs := parseString(t, src)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	sec := res.Policies[0].Sections[0]
	if !sec.Isolates[Ingress] || !sec.Isolates[Egress] {
		t.Errorf("policyTypes must default to Ingress plus Egress when egress rules exist: %v", sec.Isolates)
	}
	if len(sec.Rules) != 1 || !samePortSpec(sec.Rules[0].Ports[0], PortSpec{Protocol: ProtoUDP, First: 53, Last: 53}) {
		t.Errorf("rules = %+v", sec.Rules)
	}
	want := []*Pod{{Namespace: "shop", Name: "web", Labels: map[string]string{"app": "web"}, ServiceAccount: "default",
		Ports: []ContainerPort{{Name: "http", Protocol: ProtoTCP, Port: 8080}}, Workload: "Deployment/web", File: "p.yaml", Line: 11}}
	if diff := cmp.Diff(want, res.Pods, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("pods (-want +got):\n%s", diff)
	}
	if want := "p.yaml:25: kind: Service web does not affect connectivity: ignored"; len(res.Ignored) != 1 || res.Ignored[0].Error() != want {
		t.Errorf("ignored = %q, want %q", res.Ignored, want)
	}
}

// FuzzParse feeds arbitrary documents to the policy and workload parsers:
// they must never panic, and every problem must carry the file name.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata/truth", "../examples/networkpolicy", "../examples/deathstar"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		for _, file := range files {
			if b, err := os.ReadFile(file); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte(npHead + "  podSelector: {}\n  ingress:\n  - from: [{ipBlock: {cidr: \"::/0\", except: [\"::1/128\"]}}]\n    ports: [{port: 1, endPort: 65535}]\n"))
	f.Add([]byte(cnpHead + "  ingress:\n  - toPorts: [{ports: [{port: 80}], rules: {http: [{}]}}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		slow := time.AfterFunc(10*time.Second, func() { panic("FuzzParse: input takes more than 10s") })
		defer slow.Stop()
		docs, err := manifest.Split("fuzz.yaml", data)
		for _, e := range manifest.AsErrors("fuzz.yaml", err) {
			if e.File != "fuzz.yaml" || e.Line < 1 {
				t.Fatalf("problem without its file or line: %v", e)
			}
		}
		res, err := Parse(docs)
		for _, e := range manifest.AsErrors("fuzz.yaml", err) {
			if e.File != "fuzz.yaml" {
				t.Fatalf("problem without its file: %v", e)
			}
		}
		if e, err := Compile(res, nil); err == nil {
			e.Flatten()
		}
	})
}
