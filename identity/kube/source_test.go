package kube

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	metadatafake "k8s.io/client-go/metadata/fake"

	"github.com/vigilsec/vigil/identity/source"
	"github.com/vigilsec/vigil/internal/kubeclient"
	"github.com/vigilsec/vigil/internal/kubetest"
)

// The Kubernetes side is tested with client-go's fake dynamic and metadata
// clients. The fakes ignore field selectors, so the source's own node check
// is what keeps other nodes' pods out.

const node = "node-1"

func ctrl(kind, name string) []metav1.OwnerReference {
	t := true
	return []metav1.OwnerReference{{Kind: kind, Name: name, Controller: &t, UID: types.UID(name + "-uid")}}
}

func pod(ns, name, uid string, owners []metav1.OwnerReference, mod ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid), Labels: map[string]string{"app": name}, OwnerReferences: owners},
		Spec:       corev1.PodSpec{NodeName: node, ServiceAccountName: "sa-" + name},
	}
	for _, m := range mod {
		m(p)
	}
	return p
}

// sinkState is what the source under test has handed to its sink.
type sinkState struct {
	Pods   map[string]source.Pod
	Synced bool
	Fails  []string
}

// kubeSink is the source's sink in tests: it keeps what the source reports
// and lets the test wait for it.
type kubeSink struct{ *kubetest.State[sinkState] }

func newKubeSink() *kubeSink {
	return &kubeSink{kubetest.NewState(sinkState{Pods: map[string]source.Pod{}})}
}

func (s *kubeSink) Replace(_ string, pods []source.Pod) {
	s.Update(func(st *sinkState) {
		st.Pods = map[string]source.Pod{}
		for _, p := range pods {
			st.Pods[p.Key] = p
		}
	})
}
func (s *kubeSink) Upsert(_ string, p source.Pod) {
	s.Update(func(st *sinkState) { st.Pods[p.Key] = p })
}
func (s *kubeSink) Delete(_ string, k string) {
	s.Update(func(st *sinkState) { delete(st.Pods, k) })
}
func (s *kubeSink) Synced(string) {
	s.Update(func(st *sinkState) { st.Synced = true })
}
func (s *kubeSink) Failed(_, op string, err error) {
	s.Update(func(st *sinkState) { st.Fails = append(st.Fails, op+": "+err.Error()) })
}
func (s *kubeSink) Recovered(string) {}

// wait waits until the source has synced and cond holds for its pods.
func (s *kubeSink) wait(t *testing.T, timeout time.Duration, what string, cond func(map[string]source.Pod) bool) {
	t.Helper()
	s.Await(t, timeout, what, func(st sinkState) bool { return st.Synced && cond(st.Pods) })
}

// pods returns a copy of the pods the source has reported.
func (s *kubeSink) pods() map[string]source.Pod {
	var out map[string]source.Pod
	s.Get(func(st sinkState) { out = maps.Clone(st.Pods) })
	return out
}

// cluster is the fake API: pods through the dynamic client, everything
// else through the metadata client, as the source reads them.
type cluster struct {
	t    *testing.T
	dyn  *dynamicfake.FakeDynamicClient
	meta *metadatafake.FakeMetadataClient
}

func testScheme(t *testing.T) *runtime.Scheme {
	sc := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme, metav1.AddMetaToScheme} {
		if err := add(sc); err != nil {
			t.Fatal(err)
		}
	}
	return sc
}

// metaOf is the metadata client's view of a typed object.
func metaOf(t *testing.T, o runtime.Object) *metav1.PartialObjectMetadata {
	var m *metav1.ObjectMeta
	var tm metav1.TypeMeta
	switch o := o.(type) {
	case *corev1.Namespace:
		m, tm = &o.ObjectMeta, metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}
	case *appsv1.ReplicaSet:
		m, tm = &o.ObjectMeta, metav1.TypeMeta{APIVersion: "apps/v1", Kind: "ReplicaSet"}
	case *batchv1.Job:
		m, tm = &o.ObjectMeta, metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"}
	default:
		t.Fatalf("no metadata kind for %T", o)
	}
	return &metav1.PartialObjectMetadata{TypeMeta: tm, ObjectMeta: *m}
}

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

func (c *cluster) createPod(p *corev1.Pod) {
	if _, err := c.dyn.Resource(podsGVR).Namespace(p.Namespace).Create(context.Background(), unstructuredPod(c.t, p), metav1.CreateOptions{}); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) updatePod(p *corev1.Pod) {
	if _, err := c.dyn.Resource(podsGVR).Namespace(p.Namespace).Update(context.Background(), unstructuredPod(c.t, p), metav1.UpdateOptions{}); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) deletePod(ns, name string) {
	if err := c.dyn.Resource(podsGVR).Namespace(ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) updateNamespace(ns *corev1.Namespace) {
	r := c.meta.Resource(namespacesGVR).(metadatafake.MetadataClient)
	if _, err := r.UpdateFake(metaOf(c.t, ns), metav1.UpdateOptions{}); err != nil {
		c.t.Fatal(err)
	}
}

func newCluster(t *testing.T, objs ...runtime.Object) (*cluster, kubeclient.Clients) {
	sc := testScheme(t)
	var pods, metas []runtime.Object
	for _, o := range objs {
		if p, ok := o.(*corev1.Pod); ok {
			pods = append(pods, p)
		} else {
			metas = append(metas, metaOf(t, o))
		}
	}
	c := &cluster{t: t,
		dyn:  dynamicfake.NewSimpleDynamicClient(sc, pods...),
		meta: metadatafake.NewSimpleMetadataClient(sc, metas...)}
	return c, kubeclient.Clients{Dynamic: c.dyn, Metadata: c.meta}
}

func start(t *testing.T, objs ...runtime.Object) (*cluster, *kubeSink) {
	t.Helper()
	c, clients := newCluster(t, objs...)
	s := NewSource("kubernetes", clients, Options{NodeName: node})
	sink := newKubeSink()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, sink) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return c, sink
}

// TestOwners resolves each kind of owner to the workload users name.
func TestOwners(t *testing.T) {
	objs := []runtime.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"team": "shop"}}},
		&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-7d4b9c8f6d", OwnerReferences: ctrl("Deployment", "web")}},
		&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "bare-rs"}},
		&batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "report-29000000", OwnerReferences: ctrl("CronJob", "report")}},
		&batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "migrate"}},
		pod("shop", "web-7d4b9c8f6d-x2x4k", "u1", ctrl("ReplicaSet", "web-7d4b9c8f6d")),
		pod("shop", "bare-rs-abcde", "u2", ctrl("ReplicaSet", "bare-rs")),
		pod("shop", "report-29000000-q7k2p", "u3", ctrl("Job", "report-29000000")),
		pod("shop", "migrate-8x7k2", "u4", ctrl("Job", "migrate")),
		pod("shop", "db-0", "u5", ctrl("StatefulSet", "db")),
		pod("shop", "agent-k2x9p", "u6", ctrl("DaemonSet", "agent")),
		pod("shop", "debug", "u7", nil),
		// The ReplicaSet cannot be read: the pod-template-hash naming
		// still gives the Deployment.
		pod("shop", "api-5f6d7c8b9a-zz9zz", "u8", ctrl("ReplicaSet", "api-5f6d7c8b9a"), func(p *corev1.Pod) {
			p.Labels["pod-template-hash"] = "5f6d7c8b9a"
		}),
		pod("shop", "elsewhere", "u9", nil, func(p *corev1.Pod) { p.Spec.NodeName = "node-2" }),
	}
	_, sink := start(t, objs...)
	sink.wait(t, 10*time.Second, "8 pods", func(m map[string]source.Pod) bool { return len(m) == 8 })
	want := map[string][2]string{
		"web-7d4b9c8f6d-x2x4k":  {"web", "Deployment"},
		"bare-rs-abcde":         {"bare-rs", "ReplicaSet"},
		"report-29000000-q7k2p": {"report", "CronJob"},
		"migrate-8x7k2":         {"migrate", "Job"},
		"db-0":                  {"db", "StatefulSet"},
		"agent-k2x9p":           {"agent", "DaemonSet"},
		"debug":                 {"debug", "Pod"},
		"api-5f6d7c8b9a-zz9zz":  {"api", "Deployment"},
	}
	got := map[string][2]string{}
	for _, p := range sink.pods() {
		got[p.Name] = [2]string{p.Workload, p.WorkloadKind}
		if p.NamespaceLabels["team"] != "shop" {
			t.Errorf("%s: namespace labels %v", p.Name, p.NamespaceLabels)
		}
		if p.ServiceAccount != "sa-"+p.Name {
			t.Errorf("%s: service account %q", p.Name, p.ServiceAccount)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("workloads (-want +got):\n%s", diff)
	}
}

// TestPodDetails: addresses, ports and containers (scheme stripped), and
// updates: a new label, a namespace's labels, a deletion.
func TestPodDetails(t *testing.T) {
	started := metav1.NewTime(time.Unix(1700000000, 0))
	p := pod("shop", "web-0", "u1", ctrl("StatefulSet", "web"), func(p *corev1.Pod) {
		p.Spec.Containers = []corev1.Container{{Name: "nginx", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {ContainerPort: 9090}, {Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP}}}}
		p.Status.PodIPs = []corev1.PodIP{{IP: "10.1.2.3"}, {IP: "fd00::3"}}
		p.Status.ContainerStatuses = []corev1.ContainerStatus{
			{Name: "nginx", ContainerID: "containerd://" + "ab12", Image: "docker.io/library/nginx:1.27", ImageID: "docker.io/library/nginx@sha256:1111",
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}}},
			{Name: "waiting", Image: "x"},
		}
		p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "init", ContainerID: "cri-o://cd34", Image: "busybox",
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{StartedAt: started}}}}
	})
	hostNet := pod("shop", "host", "u2", nil, func(p *corev1.Pod) {
		p.Spec.HostNetwork = true
		p.Status.PodIPs = []corev1.PodIP{{IP: "192.0.2.1"}}
	})
	client, sink := start(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, p, hostNet)
	sink.wait(t, 10*time.Second, "two pods", func(m map[string]source.Pod) bool { return len(m) == 2 })
	pods := sink.pods()
	got, host := pods["shop/web-0"], pods["shop/host"]
	want := source.Pod{
		Key: "shop/web-0", UID: "u1", Name: "web-0", Namespace: "shop",
		Labels: map[string]string{"app": "web-0"}, NamespaceLabels: map[string]string{},
		Workload: "web", WorkloadKind: "StatefulSet", ServiceAccount: "sa-web-0",
		IPs:   []netip.Addr{netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("fd00::3")},
		Ports: []source.Port{{Name: "http", Protocol: "TCP", Port: 8080}, {Name: "dns", Protocol: "UDP", Port: 53}},
		Containers: []source.Container{
			{ID: "cd34", Name: "init", ImageName: "busybox", StartTime: started.UTC()},
			{ID: "ab12", Name: "nginx", ImageName: "docker.io/library/nginx:1.27", ImageID: "docker.io/library/nginx@sha256:1111", StartTime: started.UTC()},
		},
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("pod (-want +got):\n%s", diff)
	}
	if len(host.IPs) != 0 {
		t.Errorf("host-network pod has pod addresses %v", host.IPs)
	}

	p2 := p.DeepCopy()
	p2.Labels["version"] = "2"
	client.updatePod(p2)
	sink.wait(t, 10*time.Second, "the new label", func(m map[string]source.Pod) bool { return m["shop/web-0"].Labels["version"] == "2" })

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"env": "prod"}}}
	client.updateNamespace(ns)
	sink.wait(t, 10*time.Second, "namespace labels on every pod", func(m map[string]source.Pod) bool {
		return m["shop/web-0"].NamespaceLabels["env"] == "prod" && m["shop/host"].NamespaceLabels["env"] == "prod"
	})

	client.deletePod("shop", "web-0")
	sink.wait(t, 10*time.Second, "the deletion", func(m map[string]source.Pod) bool { _, ok := m["shop/web-0"]; return !ok })

	// A pod moved to another node (as the fake ignores field selectors,
	// it still arrives) is not ours.
	other := pod("shop", "other", "u3", nil, func(p *corev1.Pod) { p.Spec.NodeName = "node-2" })
	client.createPod(other)
	time.Sleep(200 * time.Millisecond)
	keys := slices.Sorted(maps.Keys(sink.pods()))
	if diff := cmp.Diff([]string{"shop/host"}, keys); diff != "" {
		t.Errorf("pods after deletion and another node's pod (-want +got):\n%s", diff)
	}
}

func TestNoNodeName(t *testing.T) {
	_, clients := newCluster(t)
	s := NewSource("kubernetes", clients, Options{})
	if err := s.Run(context.Background(), newKubeSink()); err == nil {
		t.Error("Run without a node name succeeded")
	}
}

func TestContainerID(t *testing.T) {
	for in, want := range map[string]string{"containerd://abc": "abc", "cri-o://def": "def", "docker://123": "123", "": "", "plain": "plain"} {
		if got := containerID(in); got != want {
			t.Errorf("containerID(%q) = %q, want %q", in, got, want)
		}
	}
}
