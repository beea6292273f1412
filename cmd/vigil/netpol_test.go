package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNetpolCheckDeathStar(t *testing.T) {
	dir := filepath.Join("..", "..", "examples", "deathstar")
	tests := []struct {
		from, to, port string
		code           int
		want           []string
	}{
		{"default/tiefighter", "default/deathstar", "80/TCP", 0, []string{
			"ALLOWED default/tiefighter -> default/deathstar 80/TCP",
			"ingress default/deathstar: ALLOWED (allowed by rule)",
			"CiliumNetworkPolicy default/rule1 spec.ingress[0] (" + filepath.Join(dir, "policy.yaml") + ":14)",
		}},
		{"default/xwing", "default/deathstar", "80/TCP", 1, []string{
			"DENIED default/xwing -> default/deathstar 80/TCP",
			"ingress default/deathstar: DENIED (default deny)",
			"default deny ingress of CiliumNetworkPolicy default/rule1",
		}},
		{"tiefighter", "deathstar", "443", 1, []string{"DENIED default/tiefighter -> default/deathstar 443/TCP"}},
		{"default/deathstar", "default/xwing", "80/UDP", 0, []string{"egress  default/deathstar: ALLOWED (no policy selects the pod)"}},
	}
	for _, tt := range tests {
		res := runVigil(t, nil, "netpol", "check", "--manifests", dir, "--from", tt.from, "--to", tt.to, "--port", tt.port)
		if res.Code != tt.code {
			t.Errorf("%s -> %s %s: exit %d, want %d\nstdout: %s\nstderr: %s", tt.from, tt.to, tt.port, res.Code, tt.code, res.Stdout, res.Stderr)
		}
		for _, w := range tt.want {
			if !strings.Contains(res.Stdout, w) {
				t.Errorf("%s -> %s: output lacks %q:\n%s", tt.from, tt.to, w, res.Stdout)
			}
		}
	}
}

func TestNetpolCheckBadInput(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	src := "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  podSelector: {}\n  ingress:\n  - ports:\n    - port: 80\n    - port: 0\n"
	if err := os.WriteFile(bad, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--manifests", bad, "--from", "a", "--to", "b", "--port", "80/TCP"},
			bad + ":9: spec.ingress[0].ports[1].port: port 0 is out of range (1-65535)"},
		{[]string{"--manifests", "../../examples/deathstar", "--from", "default/ywing", "--to", "deathstar", "--port", "80"},
			`--from: no pod "default/ywing" in the manifests`},
		{[]string{"--manifests", "../../examples/deathstar", "--from", "xwing", "--to", "deathstar", "--port", "80/ICMP"},
			`--port: unknown protocol "ICMP"`},
		{[]string{"--from", "xwing", "--to", "deathstar", "--port", "80"}, "--manifests: give at least one file or directory"},
	}
	for _, tt := range tests {
		res := runVigil(t, nil, append([]string{"netpol", "check"}, tt.args...)...)
		if res.Code != 2 || !strings.Contains(res.Stderr, tt.want) {
			t.Errorf("vigil netpol check %v: exit %d, stderr %q; want exit 2 and %q", tt.args, res.Code, res.Stderr, tt.want)
		}
	}
}

func TestNetpolMatrix(t *testing.T) {
	res := runVigil(t, nil, "netpol", "matrix", "--manifests", "../../examples/deathstar", "--port", "80/TCP")
	if res.Code != 0 {
		t.Fatalf("exit %d: %s", res.Code, res.Stderr)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(res.Stdout, "\n") {
		f := strings.Fields(line)
		if len(f) == 4 && strings.HasPrefix(f[0], "default/") {
			rows[f[0]] = strings.Join(f[1:], " ")
		}
	}
	// Columns: deathstar, tiefighter, xwing.
	want := map[string]string{
		"default/deathstar":  "- . .",
		"default/tiefighter": ". - .",
		"default/xwing":      "X . -",
	}
	for k, v := range want {
		if rows[k] != v {
			t.Errorf("row %s = %q, want %q\n%s", k, rows[k], v, res.Stdout)
		}
	}

	res = runVigil(t, nil, "netpol", "matrix", "--manifests", "../../examples/deathstar", "--port", "80/TCP", "--output", "json")
	var rep struct {
		Pods  []string `json:"pods"`
		Flows []struct {
			From, To, Verdict string
			Ingress           *struct {
				Rules []struct{ Name, Path string }
			}
		} `json:"flows"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &rep); err != nil {
		t.Fatalf("json: %v\n%s", err, res.Stdout)
	}
	if len(rep.Pods) != 3 || len(rep.Flows) != 6 {
		t.Fatalf("want 3 pods and 6 flows, got %d and %d", len(rep.Pods), len(rep.Flows))
	}
	for _, f := range rep.Flows {
		if f.From == "default/xwing" && f.To == "default/deathstar" {
			if f.Verdict != "DENIED" || f.Ingress == nil || len(f.Ingress.Rules) != 1 || f.Ingress.Rules[0].Name != "rule1" {
				t.Errorf("xwing -> deathstar = %+v", f)
			}
		}
	}
}

// TestNetpolCheckManifests checks `netpol check` without a flow: every
// problem of every document at once, Lists and JSON read, warnings for what
// is ignored and for named ports no pod has.
func TestNetpolCheckManifests(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := filepath.Join(dir, "good")
	os.Mkdir(good, 0o755)
	list := filepath.Join(good, "list.yaml")
	os.WriteFile(list, []byte(`apiVersion: v1
kind: List
metadata:
  resourceVersion: ""
items:
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata:
    name: web
    namespace: shop
    uid: 0d5a
    resourceVersion: "77"
    generation: 1
    creationTimestamp: "2026-01-01T00:00:00Z"
    managedFields: [{manager: kubectl-client-side-apply}]
    annotations:
      kubectl.kubernetes.io/last-applied-configuration: |
        {"apiVersion":"networking.k8s.io/v1"}
  spec:
    podSelector: {matchLabels: {app: web}}
    ingress:
    - ports: [{port: htpp}]
  status: {}
- apiVersion: v1
  kind: Service
  metadata: {name: web, namespace: shop}
  spec: {}
`), 0o644)
	jsonFile := filepath.Join(good, "pod.json")
	os.WriteFile(jsonFile, []byte(`{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
 "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"name": "http", "containerPort": 8080}]}]}}`), 0o644)

	bad := write("bad.yaml", `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: db
  namespace: shop
spec:
  podSelector:
    matchLabels:
      app: db
      app: web
      flag: yes
  ingress:
  - ports:
    - port: 0
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: a}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c}
kind: NetworkPolicy
`)
	tests := []struct {
		name     string
		paths    []string
		wantOut  []string
		wantCode int
	}{
		{"valid, with warnings", []string{good}, []string{
			list + `:22: items[0].spec.ingress[0].ports[0].port: warning: no pod has a port named "htpp" (TCP): the rule matches nothing on it`,
			list + ":25: items[1].kind: warning: Service web does not affect connectivity: ignored",
			"1 policies, 1 pods, 0 namespaces: valid",
		}, 0},
		{"every problem", []string{bad}, []string{
			bad + ":10: spec.podSelector.matchLabels.app: duplicate key (first at line 9)",
			bad + `:11: spec.podSelector.matchLabels.flag: yes is the boolean true in YAML 1.1 (kubectl, the API server), not a string: quote it ("yes")`,
			bad + ":14: spec.ingress[0].ports[0].port: port 0 is out of range (1-65535)",
			bad + ":17: kind: policy.networking.k8s.io/v1alpha1 AdminNetworkPolicy is a policy kind Vigil does not enforce (supported: NetworkPolicy networking.k8s.io/v1, CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy cilium.io/v2)",
			bad + ":23: kind: duplicate key (first at line 21)",
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"netpol", "check"}
			for _, p := range tt.paths {
				args = append(args, "--manifests", p)
			}
			res := runVigil(t, nil, args...)
			if res.Code != tt.wantCode {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", res.Code, tt.wantCode, res.Stdout, res.Stderr)
			}
			got := strings.Split(strings.TrimSuffix(res.Stdout, "\n"), "\n")
			if diff := cmp.Diff(tt.wantOut, got); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
	}
}

// TestNetpolCheckFQDN decides toFQDNs rules offline from a name→address
// table given as a hosts file or as --resolve.
func TestNetpolCheckFQDN(t *testing.T) {
	dir := filepath.Join("..", "..", "examples", "fqdn")
	hosts := filepath.Join(dir, "hosts")
	tests := []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"--hosts", hosts, "--to", "api.example.com", "--port", "443/TCP"}, 0, []string{
			"ALLOWED shop/client -> 203.0.113.10 (api.example.com) 443/TCP",
			"CiliumNetworkPolicy shop/client-egress spec.egress[1] (" + filepath.Join(dir, "policy.yaml") + ":25)",
		}},
		{[]string{"--hosts", hosts, "--to", "203.0.113.20", "--port", "80/TCP"}, 0, []string{
			"ALLOWED shop/client -> 203.0.113.20 (img.cdn.example.net, static.cdn.example.net) 80/TCP",
		}},
		{[]string{"--hosts", hosts, "--to", "api.example.com", "--port", "80/TCP"}, 1, []string{
			"DENIED shop/client -> 203.0.113.10 (api.example.com) 80/TCP",
			"egress  shop/client: DENIED (default deny)",
		}},
		{[]string{"--hosts", hosts, "--to", "tracker.example.org", "--port", "443/TCP"}, 1, []string{"DENIED"}},
		{[]string{"--resolve", "a.cdn.example.net=198.51.100.1,198.51.100.2", "--to", "198.51.100.2", "--port", "443/TCP"}, 0, []string{
			"ALLOWED shop/client -> 198.51.100.2 (a.cdn.example.net) 443/TCP",
		}},
		{[]string{"--to", "203.0.113.10", "--port", "443/TCP"}, 1, []string{"DENIED shop/client -> 203.0.113.10 443/TCP"}},
		{[]string{"--to", "10.0.0.10", "--port", "53/UDP", "--dns-query", "evil.org"}, 1, []string{
			"DENIED shop/client -> 10.0.0.10 53/UDP query evil.org",
			"egress  shop/client: DENIED (DNS name not allowed by rules.dns)",
			"CiliumNetworkPolicy shop/client-egress spec.egress[0] (" + filepath.Join(dir, "policy.yaml") + ":15)",
		}},
		{[]string{"--to", "10.0.0.10", "--port", "53/UDP", "--dns-query", "IMG.cdn.example.net."}, 0, []string{
			"ALLOWED shop/client -> 10.0.0.10 53/UDP query IMG.cdn.example.net.",
		}},
	}
	for _, tt := range tests {
		args := append([]string{"netpol", "check", "--manifests", dir, "--from", "shop/client"}, tt.args...)
		res := runVigil(t, nil, args...)
		if res.Code != tt.code {
			t.Errorf("%v: exit %d, want %d\nstdout: %s\nstderr: %s", tt.args, res.Code, tt.code, res.Stdout, res.Stderr)
		}
		for _, w := range tt.want {
			if !strings.Contains(res.Stdout, w) {
				t.Errorf("%v: output lacks %q:\n%s", tt.args, w, res.Stdout)
			}
		}
	}

	bad := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(bad, []byte("203.0.113.1 ok.example.com\n# comment\n300.1.1.1 x.com\n203.0.113.2 bad..name\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"--hosts", bad}, []string{
			bad + `:3: invalid IP address "300.1.1.1" (want: ADDRESS NAME...)`,
			bad + `:4: name "bad..name": invalid DNS name: label 2 is empty (two dots in a row, or a leading dot)`,
		}},
		{[]string{"--resolve", "x.com"}, []string{`--resolve: "x.com": want NAME=ADDRESS[,ADDRESS...]`}},
		{[]string{"--to", "nowhere.example.com"}, []string{`--to: "nowhere.example.com" is neither a pod nor a name of the DNS table`}},
	} {
		args := append([]string{"netpol", "check", "--manifests", dir, "--from", "shop/client", "--to", "api.example.com", "--port", "443/TCP"}, tt.args...)
		res := runVigil(t, nil, args...)
		if res.Code != 2 {
			t.Errorf("%v: exit %d, want 2\nstderr: %s", tt.args, res.Code, res.Stderr)
		}
		for _, w := range tt.want {
			if !strings.Contains(res.Stderr, w) {
				t.Errorf("%v: stderr lacks %q:\n%s", tt.args, w, res.Stderr)
			}
		}
	}
}
