package agent

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

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

// TestNamedPortWarningsLogged checks that the agent logs a named port no
// pod has when it appears, once, and again after it was fixed and broke.
func TestNamedPortWarningsLogged(t *testing.T) {
	log, hook := logtest.NewNullLogger()
	w := manifest.Errors{{File: "np.yaml", Line: 9, Path: "spec.ingress[0].ports[0].port", Msg: `no pod has a port named "htpp" (TCP): the rule matches nothing on it`}}
	logged := logNewWarnings(log, w, nil)
	logged = logNewWarnings(log, w, logged)
	if n := len(hook.AllEntries()); n != 1 {
		t.Fatalf("%d log lines for one warning over two applies, want 1", n)
	}
	e := hook.LastEntry()
	if e.Level != logrus.WarnLevel || e.Message != "network policy: "+w[0].Msg || e.Data["file"] != "np.yaml" || e.Data["line"] != 9 || e.Data["field"] != w[0].Path {
		t.Errorf("logged %v %q %v", e.Level, e.Message, e.Data)
	}
	logged = logNewWarnings(log, nil, logged)
	logNewWarnings(log, w, logged)
	if n := len(hook.AllEntries()); n != 2 {
		t.Errorf("%d log lines, want the warning again once it came back", n)
	}
}
