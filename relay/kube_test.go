package relay

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	"github.com/vigilsec/vigil/internal/kubetest"
)

// TestKubeDiscovery: the relay finds the agents' pods on a real API
// server — running, with an IP — and follows them as they come, get their
// addresses and go.
func TestKubeDiscovery(t *testing.T) {
	srv := kubetest.Start(t)
	ctx := kubetest.Context(t)
	cs := srv.Clientset(t)
	const ns = "vigil"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(srv.Config)
	if err != nil {
		t.Fatal(err)
	}
	last := kubetest.NewState[[]Peer](nil)
	d := &Kubernetes{Client: dyn, Namespace: ns, Selector: "app.kubernetes.io/name=vigil", Port: 4244}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- d.Run(runCtx, func(p []Peer) { last.Update(func(v *[]Peer) { *v = p }) })
	}()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("discovery: %v", err)
		}
	})
	await := func(what string, want []Peer) {
		t.Helper()
		last.Await(t, time.Minute, fmt.Sprintf("%s: peers %v", what, want), func(got []Peer) bool {
			return slices.Equal(got, want) && (len(want) > 0 || got != nil)
		})
	}
	agent := func(name, node, ip string, labels map[string]string) {
		t.Helper()
		p, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "agent", Image: "vigil"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}
		if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	vigil := map[string]string{"app.kubernetes.io/name": "vigil"}
	agent("vigil-a", "node-1", "10.0.1.7", vigil)
	agent("vigil-b", "node-2", "10.0.2.7", vigil)
	agent("other", "node-3", "10.0.3.7", map[string]string{"app.kubernetes.io/name": "other"})
	await("both agents", []Peer{{Name: "node-1", Address: "10.0.1.7:4244"}, {Name: "node-2", Address: "10.0.2.7:4244"}})

	zero := int64(0)
	if err := cs.CoreV1().Pods(ns).Delete(ctx, "vigil-a", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	await("node-1's agent gone", []Peer{{Name: "node-2", Address: "10.0.2.7:4244"}})
}
