package identity

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/identity/source"
)

// syntheticPods makes n pods of two containers each, as the runtime and the
// Kubernetes API would report them, and the cgroup paths of their
// containers and sandboxes.
func syntheticPods(n int) (cri, kube []source.Pod, paths map[uint64]string) {
	paths = map[uint64]string{}
	id := uint64(1000)
	for i := range n {
		uid := fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
		sb := fmt.Sprintf("%064x", 3*i+1)
		c1 := fmt.Sprintf("%064x", 3*i+2)
		c2 := fmt.Sprintf("%064x", 3*i+3)
		name := fmt.Sprintf("app-%d-7d4b9c8f6d-x2x4k", i)
		ns := fmt.Sprintf("team-%d", i%20)
		lbl := map[string]string{"app": fmt.Sprintf("app-%d", i), "pod-template-hash": "7d4b9c8f6d", "tier": "backend", "version": "v1"}
		start := time.Unix(int64(i), 0).UTC()
		cri = append(cri, source.Pod{Key: sb, UID: uid, Name: name, Namespace: ns, SandboxID: sb, Labels: lbl,
			Containers: []source.Container{
				{ID: c1, Name: "app", ImageName: "registry.example/app:1.2.3", ImageID: "sha256:" + c1, StartTime: start},
				{ID: c2, Name: "sidecar", ImageName: "registry.example/proxy:1.0", ImageID: "sha256:" + c2, StartTime: start},
			}})
		kube = append(kube, source.Pod{Key: ns + "/" + name, UID: uid, Name: name, Namespace: ns, Labels: lbl,
			NamespaceLabels: map[string]string{"team": ns}, Workload: fmt.Sprintf("app-%d", i), WorkloadKind: "Deployment",
			ServiceAccount: "default",
			Containers:     []source.Container{{ID: c1, Name: "app"}, {ID: c2, Name: "sidecar"}}})
		pod := "/kubepods/burstable/pod" + uid
		for _, p := range []string{pod, pod + "/" + sb, pod + "/" + c1, pod + "/" + c2} {
			paths[id] = p
			id++
		}
	}
	return cri, kube, paths
}

// newSynthetic builds a resolver's state from synthetic pods without a
// cgroup tree: what Run would hold after its first sync.
func newSynthetic(tb testing.TB, n int) *Resolver {
	tb.Helper()
	cri, kube, paths := syntheticPods(n)
	r, err := NewWithSources(DefaultConfig(), tb.TempDir(), nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	s := &sink{r: r}
	s.Replace(SourceCRI, cri)
	s.Replace(SourceKubernetes, kube)
	for id, p := range paths {
		r.paths[id] = cgEntryOf(p)
	}
	r.rebuild()
	return r
}

// BenchmarkPodForCgroup is the hot path with 1,000 pods known.
func BenchmarkPodForCgroup(b *testing.B) {
	r := newSynthetic(b, 1000)
	ids := make([]uint64, 0, len(r.paths))
	for id := range r.paths {
		ids = append(ids, id)
	}
	var sink *event.Pod
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p, _ := r.PodForCgroup(ids[i%len(ids)])
		sink = p
		i++
	}
	if sink == nil && len(ids) > 0 {
		_ = sink
	}
}

// BenchmarkPodForCgroupParallel is the hot path from every CPU at once.
func BenchmarkPodForCgroupParallel(b *testing.B) {
	r := newSynthetic(b, 1000)
	ids := make([]uint64, 0, len(r.paths))
	for id := range r.paths {
		ids = append(ids, id)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			r.PodForCgroup(ids[i%len(ids)])
			i++
		}
	})
}

// BenchmarkRebuild is the cost of one change with 1,000 pods known.
func BenchmarkRebuild(b *testing.B) {
	r := newSynthetic(b, 1000)
	b.ReportAllocs()
	for b.Loop() {
		r.rebuild()
	}
}

// BenchmarkMemoryPer1000Pods reports the heap the resolver holds for 1,000
// pods of two containers (runtime and API records, the merged view, the
// event.Pod values, the cgroup index and the hot map).
func BenchmarkMemoryPer1000Pods(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		cri, kube, paths := syntheticPods(1000)
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		b.StartTimer()
		r, err := NewWithSources(DefaultConfig(), b.TempDir(), nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		s := &sink{r: r}
		s.Replace(SourceCRI, cri)
		s.Replace(SourceKubernetes, kube)
		for id, p := range paths {
			r.paths[id] = cgEntryOf(p)
		}
		r.rebuild()
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		// The source records were built outside; count what the
		// resolver adds, plus the records it keeps.
		held := float64(after.HeapAlloc) - float64(before.HeapAlloc)
		b.ReportMetric(held/1024, "KiB/1000pods")
		runtime.KeepAlive(r)
		runtime.KeepAlive(cri)
		runtime.KeepAlive(kube)
		b.StartTimer()
	}
}

// TestPodForCgroupAllocs keeps the hot path free of allocations.
func TestPodForCgroupAllocs(t *testing.T) {
	r := newSynthetic(t, 10)
	var id uint64
	for k := range r.paths {
		id = k
	}
	if n := testing.AllocsPerRun(1000, func() { r.PodForCgroup(id) }); n != 0 {
		t.Errorf("PodForCgroup allocates %v times per call", n)
	}
	if n := testing.AllocsPerRun(1000, func() { r.PodForCgroup(1) }); n != 0 {
		t.Errorf("PodForCgroup of an unknown id allocates %v times per call", n)
	}
}
