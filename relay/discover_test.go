package relay

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
)

func unstructuredPod(t *testing.T, p *corev1.Pod) *unstructured.Unstructured {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(p)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetAPIVersion("v1")
	u.SetKind("Pod")
	return u
}

// agentPod is a pod of the chart: the agents' are app.kubernetes.io/name
// vigil, the relay's vigil-relay.
func agentPod(name, node, ip string, phase corev1.PodPhase, app string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "vigil",
			Labels: map[string]string{"app.kubernetes.io/name": app, "app.kubernetes.io/instance": "vigil"}},
		Spec:   corev1.PodSpec{NodeName: node},
		Status: corev1.PodStatus{Phase: phase, PodIP: ip},
	}
}

// The relay's peers are the running agent pods: a new node's agent is
// followed, a deleted one dropped; other pods of the release and pods not
// yet running are not peers.
func TestKubernetesDiscovery(t *testing.T) {
	sc := runtime.NewScheme()
	if err := corev1.AddToScheme(sc); err != nil {
		t.Fatal(err)
	}
	client := dynamicfake.NewSimpleDynamicClient(sc,
		agentPod("vigil-a", "node-a", "10.0.0.1", corev1.PodRunning, "vigil"),
		agentPod("vigil-b", "node-b", "10.0.0.2", corev1.PodPending, "vigil"),
		agentPod("vigil-relay", "node-a", "10.0.0.9", corev1.PodRunning, "vigil-relay"),
	)
	d := &Kubernetes{Client: client, Namespace: "vigil", Selector: DefaultConfig().Selector, Port: 4244}
	updates := make(chan []Peer, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.Run(ctx, func(ps []Peer) { updates <- ps })
	next := func() []Peer {
		select {
		case ps := <-updates:
			return ps
		case <-time.After(10 * time.Second):
			t.Fatal("no peer update")
			return nil
		}
	}
	if diff := cmp.Diff([]Peer{{"node-a", "10.0.0.1:4244"}}, next()); diff != "" {
		t.Errorf("first peers (-want +got):\n%s", diff)
	}
	pods := client.Resource(podsGVR).Namespace("vigil")
	b := agentPod("vigil-b", "node-b", "10.0.0.2", corev1.PodRunning, "vigil")
	if _, err := pods.UpdateStatus(ctx, unstructuredPod(t, b), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Peer{{"node-a", "10.0.0.1:4244"}, {"node-b", "10.0.0.2:4244"}}, next()); diff != "" {
		t.Errorf("after node-b's agent runs (-want +got):\n%s", diff)
	}
	if err := pods.Delete(ctx, "vigil-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Peer{{"node-b", "10.0.0.2:4244"}}, next()); diff != "" {
		t.Errorf("after node-a's agent is deleted (-want +got):\n%s", diff)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"defaults need auth beyond loopback", func(*Config) {}, "--ui-addr :12000: beyond loopback the API requires authentication"},
		{"loopback", func(c *Config) { c.Addr, c.HubbleAddr = "127.0.0.1:12000", "127.0.0.1:4245" }, ""},
		{"static peers", func(c *Config) {
			c.Addr, c.HubbleAddr = "127.0.0.1:12000", ""
			c.Peers = []string{"node-a=10.0.0.1:4244", "10.0.0.2:4244"}
		}, ""},
		{"bad peer", func(c *Config) { c.Addr = "127.0.0.1:1"; c.Peers = []string{"node-a=10.0.0.1"} }, `--peer "node-a=10.0.0.1": want NAME=HOST:PORT`},
		{"duplicate peer", func(c *Config) { c.Addr = "127.0.0.1:1"; c.Peers = []string{"a=h:1", "a=h:2"} }, "the name a is given twice"},
		{"bad selector", func(c *Config) { c.Addr = "127.0.0.1:1"; c.Selector = "app in (x" }, "--peer-selector:"},
		{"client cert without CA", func(c *Config) {
			c.Addr = "127.0.0.1:1"
			c.PeerTLS.CertFile, c.PeerTLS.KeyFile = "c", "k"
		}, "--peer-tls-cert-file: a client certificate needs TLS"},
		{"nothing served", func(c *Config) { c.Addr, c.HubbleAddr = "", "" }, "the relay must serve at least one of them"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.change(&c)
			err := c.Validate()
			if tt.want == "" && err != nil {
				t.Errorf("error %v, want none", err)
			}
			if tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
