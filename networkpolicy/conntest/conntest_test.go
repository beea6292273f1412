package conntest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/networkpolicy"
)

const pods = `apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {app: a}}
spec: {containers: [{name: c, image: i}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: x, labels: {app: b}}
spec: {containers: [{name: c, image: i}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: x, annotations: {vigil.dev/test-steps: "1"}}
spec: {podSelector: {}}
---
`

func write(t *testing.T, src string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "t.yaml")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadStepsAndMatrix(t *testing.T) {
	f := write(t, pods+`apiVersion: vigil.dev/v1alpha1
kind: ConnectivityTest
metadata: {name: t}
spec:
  steps:
  - name: open
    matrix:
    - port: 80/TCP
      expect: allow
  - name: closed
    matrix:
    - port: 53/UDP
      expect: allow
      except:
      - {from: "*", to: "x/a", expect: deny}
    cases:
    - {from: 203.0.113.1, to: x/b, port: "8080", expect: audit}
`)
	s, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	type c struct {
		From, To string
		Port     uint16
		Proto    networkpolicy.Protocol
		Expect   networkpolicy.Verdict
	}
	var got [][]c
	for _, st := range s.Steps {
		var cs []c
		for _, x := range st.Cases {
			cs = append(cs, c{x.From, x.To, x.Port, x.Protocol, x.Expect})
		}
		got = append(got, cs)
	}
	want := [][]c{
		{{"x/a", "x/b", 80, networkpolicy.ProtoTCP, networkpolicy.Allow}, {"x/b", "x/a", 80, networkpolicy.ProtoTCP, networkpolicy.Allow}},
		{{"203.0.113.1", "x/b", 8080, networkpolicy.ProtoTCP, networkpolicy.Audit},
			{"x/a", "x/b", 53, networkpolicy.ProtoUDP, networkpolicy.Allow}, {"x/b", "x/a", 53, networkpolicy.ProtoUDP, networkpolicy.Deny}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("cases (-want +got):\n%s", diff)
	}
	for i, wantPolicies := range []int{0, 1} {
		res, err := s.Resources(i)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Policies) != wantPolicies {
			t.Errorf("step %d has %d policies, want %d", i, len(res.Policies), wantPolicies)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct{ spec, want string }{
		{"  cases:\n  - {from: x/a, to: x/b, port: 80/ICMP, expect: allow}\n", `spec.cases[0].port: unknown protocol "ICMP"`},
		{"  cases:\n  - {from: x/a, to: x/b, port: 80, expect: maybe}\n", `spec.cases[0].expect: unknown verdict "maybe" (want allow, deny or audit)`},
		{"  cases:\n  - {from: x/a, port: 80, expect: deny}\n", `spec.cases[0]: from and to are required`},
		{"  steps: []\n", `spec: no cases`},
	}
	for _, tt := range tests {
		_, err := Load(write(t, pods+"apiVersion: vigil.dev/v1alpha1\nkind: ConnectivityTest\nmetadata: {name: t}\nspec:\n"+tt.spec))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("spec %q: got %v, want %q", tt.spec, err, tt.want)
		}
	}
}
