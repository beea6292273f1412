package kube

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"

	"github.com/vigilsec/vigil/identity/source"
	"github.com/vigilsec/vigil/internal/kubeclient"
	"github.com/vigilsec/vigil/internal/kubetest"
)

// The same source against a real API server (the Kubernetes tier): field
// selectors, watches, status updates and restarts as a cluster does them.

func realClients(t *testing.T, cfg *rest.Config) kubeclient.Clients {
	t.Helper()
	d, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, err := metadata.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return kubeclient.Clients{Dynamic: d, Metadata: m}
}

// runSource runs a source for node until the test ends.
func runSource(t *testing.T, ctx context.Context, cfg *rest.Config, node string) *kubeSink {
	t.Helper()
	sink := newKubeSink()
	src := NewSource("kubernetes", realClients(t, cfg), Options{NodeName: node})
	ctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, sink) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("source of %s: %v", node, err)
		}
	})
	return sink
}

func keys(pods map[string]source.Pod) []string {
	var out []string
	for k := range pods {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func hasKeys(want ...string) func(map[string]source.Pod) bool {
	return func(pods map[string]source.Pod) bool { return slices.Equal(keys(pods), want) }
}

func mustCreatePod(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns, name, node string, owners []metav1.OwnerReference) *corev1.Pod {
	t.Helper()
	p, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}, OwnerReferences: owners},
		Spec: corev1.PodSpec{
			NodeName: node, ServiceAccountName: "sa-" + name,
			Containers: []corev1.Container{{Name: "main", Image: "registry.example/shop/" + name + ":1",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s/%s: %v", ns, name, err)
	}
	return p
}

// TestKubePods: pods created, given addresses by a status update,
// relabelled and deleted, a namespace relabelled, and two sources for two
// nodes that each see their own pods only; then the API server restarts
// and the sources follow what changes after.
func TestKubePods(t *testing.T) {
	srv := kubetest.Start(t)
	ctx := kubetest.Context(t)
	cs := srv.Clientset(t)
	const ns = "shop"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: ns, Labels: map[string]string{"team": "a"},
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A Deployment's ReplicaSet owns the web pod; nothing runs them (no
	// controller manager), they are only there to be read.
	dep, err := cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "web"}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	yes := true
	rs, err := cs.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web-7d4b9c", OwnerReferences: []metav1.OwnerReference{{
			APIVersion: "apps/v1", Kind: "Deployment", Name: dep.Name, UID: dep.UID, Controller: &yes,
		}}},
		Spec: appsv1.ReplicaSetSpec{Selector: dep.Spec.Selector, Template: dep.Spec.Template},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	node1 := runSource(t, ctx, srv.Config, "node-1")
	node2 := runSource(t, ctx, srv.Config, "node-2")
	node1.wait(t, time.Minute, "node-1's first, empty state", hasKeys())

	web := mustCreatePod(t, ctx, cs, ns, "web-7d4b9c-x2x9q", "node-1", []metav1.OwnerReference{{
		APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: &yes,
	}})
	mustCreatePod(t, ctx, cs, ns, "db", "node-2", nil)
	node1.wait(t, time.Minute, "the web pod on node-1", hasKeys(ns+"/"+web.Name))
	node2.wait(t, time.Minute, "the db pod on node-2", hasKeys(ns+"/db"))

	// The kubelet's part: addresses and containers in the status.
	started := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	web.Status = corev1.PodStatus{
		Phase: corev1.PodRunning, PodIP: "10.1.0.5", PodIPs: []corev1.PodIP{{IP: "10.1.0.5"}, {IP: "fd00::5"}},
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: "main", Image: "registry.example/shop/web:1", ImageID: "registry.example/shop/web@sha256:" + strings.Repeat("ab", 32),
			ContainerID: "containerd://" + strings.Repeat("c1", 32), Ready: true,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}},
		}},
	}
	if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, web, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("status: %v", err)
	}
	key := ns + "/" + web.Name
	node1.wait(t, time.Minute, "the web pod's addresses and container", func(pods map[string]source.Pod) bool {
		p := pods[key]
		return len(p.IPs) == 2 && len(p.Containers) == 1
	})
	got := node1.pods()[key]
	want := source.Pod{
		Key: key, UID: string(web.UID), Name: web.Name, Namespace: ns,
		Labels:          map[string]string{"app": web.Name}, // The API server labels every namespace with its name.
		NamespaceLabels: map[string]string{"team": "a", "kubernetes.io/metadata.name": ns},
		ServiceAccount:  "sa-" + web.Name, Workload: "web", WorkloadKind: "Deployment",
		IPs:   []netip.Addr{netip.MustParseAddr("10.1.0.5"), netip.MustParseAddr("fd00::5")},
		Ports: []source.Port{{Name: "http", Protocol: "TCP", Port: 8080}},
		Containers: []source.Container{{
			ID: strings.Repeat("c1", 32), Name: "main", ImageName: "registry.example/shop/web:1",
			ImageID: "registry.example/shop/web@sha256:" + strings.Repeat("ab", 32), StartTime: started.UTC(),
		}},
	}
	if d := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Addr{})); d != "" {
		t.Errorf("the web pod as the source reports it (-want +got):\n%s", d)
	}

	// Relabelled pod, relabelled namespace.
	patch := func(what string, f func() error) {
		t.Helper()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	patch("relabel pod", func() error {
		_, err := cs.CoreV1().Pods(ns).Patch(ctx, web.Name, types.MergePatchType, []byte(`{"metadata":{"labels":{"app":"web","tier":"front"}}}`), metav1.PatchOptions{})
		return err
	})
	node1.wait(t, time.Minute, "the web pod's new labels", func(pods map[string]source.Pod) bool { return pods[key].Labels["tier"] == "front" })
	patch("relabel namespace", func() error {
		_, err := cs.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, []byte(`{"metadata":{"labels":{"team":"b"}}}`), metav1.PatchOptions{})
		return err
	})
	node1.wait(t, time.Minute, "the namespace's new labels", func(pods map[string]source.Pod) bool { return pods[key].NamespaceLabels["team"] == "b" })
	node2.wait(t, time.Minute, "the namespace's new labels on node-2", func(pods map[string]source.Pod) bool { return pods[ns+"/db"].NamespaceLabels["team"] == "b" })

	zero := int64(0)
	patch("delete pod", func() error {
		return cs.CoreV1().Pods(ns).Delete(ctx, web.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	})
	node1.wait(t, time.Minute, "the web pod gone", hasKeys())

	// The API server process is replaced (etcd keeps the state): every
	// connection of the sources breaks, and what changes afterwards
	// reaches them only if they reconnect.
	srv.RestartAPIServer()
	mustCreatePod(t, ctx, cs, ns, "api", "node-1", nil)
	patch("delete db", func() error {
		return cs.CoreV1().Pods(ns).Delete(ctx, "db", metav1.DeleteOptions{GracePeriodSeconds: &zero})
	})
	node1.wait(t, time.Minute, "the api pod, created after the restart", hasKeys(ns+"/api"))
	node2.wait(t, time.Minute, "the db pod gone after the restart", hasKeys())
}
