package identity

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/identity/cgroup"
	"github.com/vigilsec/vigil/identity/source"
)

// fakeSource reports what the test tells it and answers lookups with
// lookup.
type fakeSource struct {
	name    string
	initial []source.Pod
	lookup  func(id string) (source.Pod, error)
	sinkCh  chan source.Sink
}

func newFake(name string, pods ...source.Pod) *fakeSource {
	return &fakeSource{name: name, initial: pods, sinkCh: make(chan source.Sink, 1)}
}

func (f *fakeSource) Name() string { return f.name }

func (f *fakeSource) Run(ctx context.Context, s source.Sink) error {
	s.Replace(f.name, f.initial)
	s.Synced(f.name)
	f.sinkCh <- s
	<-ctx.Done()
	return nil
}

type fakeLooker struct {
	*fakeSource
	mu    sync.Mutex
	calls []string
}

func (f *fakeLooker) Lookup(_ context.Context, id string) (source.Pod, error) {
	f.mu.Lock()
	f.calls = append(f.calls, id)
	f.mu.Unlock()
	if f.lookup == nil {
		return source.Pod{}, source.ErrNotFound
	}
	return f.lookup(id)
}

// tree is a fake cgroup hierarchy: plain directories, whose inode numbers
// stand for cgroup ids.
type tree struct {
	t    *testing.T
	root string
}

func newTree(t *testing.T, dirs ...string) *tree {
	tr := &tree{t: t, root: t.TempDir()}
	for _, d := range dirs {
		tr.mkdir(d)
	}
	return tr
}

func (tr *tree) mkdir(d string) uint64 {
	tr.t.Helper()
	if err := os.MkdirAll(filepath.Join(tr.root, d), 0o755); err != nil {
		tr.t.Fatal(err)
	}
	return tr.id(d)
}

func (tr *tree) id(d string) uint64 {
	tr.t.Helper()
	id, err := cgroup.ID(filepath.Join(tr.root, d))
	if err != nil {
		tr.t.Fatal(err)
	}
	return id
}

const (
	uidA = "0b6f3c2e-5a41-4d8e-9b7a-2c1d3e4f5a6b"
	cidA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1"
	cidB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb2"
	sbA  = "5555555555555555555555555555555555555555555555555555555555555555"
)

var podDir = "/kubepods/besteffort/pod" + uidA

// logBuffer collects log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// harness runs a resolver over a fake tree and fake sources.
type harness struct {
	r       *Resolver
	changes *changes
	reg     *prometheus.Registry
	logs    *logBuffer
}

func run(t *testing.T, tr *tree, srcs ...source.Source) *harness {
	t.Helper()
	logs := &logBuffer{}
	l := logrus.New()
	l.SetOutput(logs)
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	r, err := NewWithSources(cfg, tr.root, l, reg, srcs...)
	if err != nil {
		t.Fatal(err)
	}
	// A plain directory tree cannot be opened by cgroup handle: misses
	// are resolved by walking, as without CAP_DAC_READ_SEARCH.
	if r.opener != nil {
		r.opener.Close()
		r.opener = nil
	}
	h := &harness{r: r, changes: newChanges(r), reg: reg, logs: logs}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-r.Synced():
	case <-time.After(10 * time.Second):
		t.Fatal("not synced")
	}
	return h
}

func criPod() source.Pod {
	return source.Pod{
		Key: sbA, UID: uidA, Name: "web-7d4b9c8f6d-x2x4k", Namespace: "shop", SandboxID: sbA,
		Labels: map[string]string{"app": "web", "pod-template-hash": "7d4b9c8f6d"},
		Containers: []source.Container{
			{ID: cidA, Name: "nginx", ImageName: "docker.io/library/nginx:1.27", ImageID: "sha256:1111", StartTime: time.Unix(100, 0).UTC()},
		},
	}
}

func kubePod() source.Pod {
	return source.Pod{
		Key: "shop/web-7d4b9c8f6d-x2x4k", UID: uidA, Name: "web-7d4b9c8f6d-x2x4k", Namespace: "shop",
		Labels:          map[string]string{"app": "web", "pod-template-hash": "7d4b9c8f6d", "version": "2"},
		NamespaceLabels: map[string]string{"team": "shop"},
		Workload:        "web", WorkloadKind: "Deployment", ServiceAccount: "web",
		Containers: []source.Container{
			{ID: cidA, Name: "nginx", ImageName: "nginx:1.27", ImageID: "docker.io/library/nginx@sha256:2222", StartTime: time.Unix(101, 0).UTC()},
			{ID: cidB, Name: "sidecar", ImageName: "envoy:1", ImageID: "sha256:3333"},
		},
	}
}

// TestMergedResolution: the runtime and the Kubernetes API describe one
// pod; every cgroup of the pod resolves, with the API's labels and owner
// and the runtime's image.
func TestMergedResolution(t *testing.T) {
	tr := newTree(t, podDir+"/"+cidA, podDir+"/"+cidB+"/nested", podDir+"/"+sbA, "/system.slice/cron.service")
	h := run(t, tr, newFake(SourceCRI, criPod()), newFake(SourceKubernetes, kubePod()))

	podLevel := &event.Pod{Namespace: "shop", Name: "web-7d4b9c8f6d-x2x4k", UID: uidA, Workload: "web", WorkloadKind: "Deployment",
		Labels: labels("app", "web", PodNamespaceLabel, "shop", "pod-template-hash", "7d4b9c8f6d", "version", "2")}
	withC := func(c event.Container) *event.Pod { p := *podLevel; p.Container = c; return &p }
	tests := []struct {
		dir  string
		want *event.Pod
	}{
		{podDir + "/" + cidA, withC(event.Container{ID: cidA, Name: "nginx", ImageName: "docker.io/library/nginx:1.27", ImageID: "sha256:1111", StartTime: time.Unix(100, 0).UTC()})},
		{podDir + "/" + cidB, withC(event.Container{ID: cidB, Name: "sidecar", ImageName: "envoy:1", ImageID: "sha256:3333"})},
		{podDir + "/" + cidB + "/nested", withC(event.Container{ID: cidB, Name: "sidecar", ImageName: "envoy:1", ImageID: "sha256:3333"})},
		{podDir + "/" + sbA, podLevel},
		{podDir, podLevel},
		{"/system.slice/cron.service", nil},
		{"/", nil},
	}
	for _, tt := range tests {
		got, pending := h.r.PodForCgroup(tr.id(tt.dir))
		if pending {
			t.Errorf("%s: pending", tt.dir)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.dir, diff)
		}
	}
	ws := h.r.Workloads()
	if len(ws) != 1 {
		t.Fatalf("Workloads() has %d entries, want 1", len(ws))
	}
	w := ws[0]
	if diff := cmp.Diff(podLevel, w.Pod); diff != "" {
		t.Errorf("workload pod (-want +got):\n%s", diff)
	}
	wantIDs := []uint64{tr.id(podDir), tr.id(podDir + "/" + cidA), tr.id(podDir + "/" + cidB), tr.id(podDir + "/" + cidB + "/nested"), tr.id(podDir + "/" + sbA)}
	if diff := cmp.Diff(sorted(wantIDs), w.CgroupIDs); diff != "" {
		t.Errorf("workload cgroups (-want +got):\n%s", diff)
	}
	if w.ServiceAccount != "web" || w.NamespaceLabels["team"] != "shop" {
		t.Errorf("workload service account %q, namespace labels %v", w.ServiceAccount, w.NamespaceLabels)
	}
}

func sorted(ids []uint64) []uint64 {
	out := append([]uint64(nil), ids...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestUnchangedPodKeepsPointer: a source repeating what it said changes
// nothing: same pointers, no OnChange.
func TestUnchangedPodKeepsPointer(t *testing.T) {
	tr := newTree(t, podDir+"/"+cidA)
	f := newFake(SourceCRI, criPod())
	h := run(t, tr, f)
	sink := <-f.sinkCh
	id := tr.id(podDir + "/" + cidA)
	before, _ := h.r.PodForCgroup(id)
	if before == nil {
		t.Fatal("no pod")
	}
	h.changes.mu.Lock()
	n := len(h.changes.seen)
	h.changes.mu.Unlock()
	sink.Replace(SourceCRI, []source.Pod{criPod()})
	// A second, different change tells when the first was processed.
	other := criPod()
	other.Key, other.UID, other.SandboxID, other.Containers = "other", "other-uid", "", nil
	sink.Upsert(SourceCRI, other)
	waitFor(t, func() bool { return len(h.r.Workloads()) == 2 })
	after, _ := h.r.PodForCgroup(id)
	if after != before {
		t.Error("an unchanged pod got a new pointer")
	}
	h.changes.mu.Lock()
	defer h.changes.mu.Unlock()
	for _, c := range h.changes.seen[n:] {
		if c.id == id {
			t.Errorf("OnChange(%d) for an unchanged pod", id)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestStartRaceLookup: a cgroup created after the sync is unknown: the hot
// path says pending, the lookup finds the container, OnChange reports it.
func TestStartRaceLookup(t *testing.T) {
	tr := newTree(t, podDir)
	f := &fakeLooker{fakeSource: newFake(SourceCRI)}
	f.lookup = func(id string) (source.Pod, error) {
		if id != cidA {
			return source.Pod{}, source.ErrNotFound
		}
		return criPod(), nil
	}
	h := run(t, tr, f)
	id := tr.mkdir(podDir + "/" + cidA)
	pod, pending := h.r.PodForCgroup(id)
	if pod != nil || !pending {
		t.Fatalf("new cgroup: PodForCgroup = %v, %v; want nil, pending", pod, pending)
	}
	got := h.changes.wait(t, id, 5*time.Second, func(p *event.Pod) bool { return p != nil })
	if got.Container.ID != cidA || got.Name != "web-7d4b9c8f6d-x2x4k" {
		t.Errorf("OnChange pod %+v", got)
	}
	if now, pending := h.r.PodForCgroup(id); now != got || pending {
		t.Errorf("after OnChange: %v, %v", now, pending)
	}
	if v := value(h.r.metrics.lookups.WithLabelValues("found")); v != 1 {
		t.Errorf("lookups found = %v, want 1", v)
	}
}

// TestLookupOutcomes: a container no source knows, a runtime answering
// errors, a cgroup of no container, an id of no cgroup: the hot path
// settles on no pod, OnChange(nil) releases held events, metrics and rate-
// limited log lines say why, nothing crashes.
func TestLookupOutcomes(t *testing.T) {
	tr := newTree(t, podDir)
	f := &fakeLooker{fakeSource: newFake(SourceCRI)}
	f.lookup = func(id string) (source.Pod, error) {
		if id == cidB {
			return source.Pod{}, errors.New("rpc error: code = Internal desc = boom")
		}
		return source.Pod{}, fmt.Errorf("container %s: %w", id, source.ErrNotFound)
	}
	h := run(t, tr, f)

	unknown := tr.mkdir(podDir + "/" + cidA)
	failing := tr.mkdir(podDir + "/" + cidB)
	plain := tr.mkdir("/user.slice/session-1.scope")
	weird := tr.mkdir("/kubepods/besteffort/not-a-pod")
	const never = 1 << 62
	for _, id := range []uint64{unknown, failing, plain, weird, never} {
		if p, pending := h.r.PodForCgroup(id); p != nil || !pending {
			t.Errorf("cgroup %d before resolution: %v, %v; want nil, pending", id, p, pending)
		}
	}
	for _, id := range []uint64{unknown, failing, plain, weird, never} {
		h.changes.wait(t, id, 5*time.Second, func(p *event.Pod) bool { return p == nil })
		if p, pending := h.r.PodForCgroup(id); p != nil || pending {
			t.Errorf("cgroup %d settled as %v, %v; want nil, false", id, p, pending)
		}
	}
	for _, m := range []struct {
		c    prometheus.Metric
		want float64
	}{
		{h.r.metrics.lookups.WithLabelValues("not_found"), 1},
		{h.r.metrics.lookups.WithLabelValues("error"), 1},
		{h.r.metrics.sourceErrors.WithLabelValues(SourceCRI, "lookup"), 1},
		{h.r.metrics.misses.WithLabelValues("container"), 2},
		{h.r.metrics.misses.WithLabelValues("no_container"), 2},
		{h.r.metrics.misses.WithLabelValues("gone"), 1},
	} {
		if got := value(m.c); got != m.want {
			t.Errorf("%v = %v, want %v", m.c.Desc(), got, m.want)
		}
	}
	logs := h.logs.String()
	for _, want := range []string{"container lookup failed", "code = Internal desc = boom", "unknown to every runtime source", "names no container or pod"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	// Asking again costs no lookup: the answer is remembered.
	f.mu.Lock()
	calls := len(f.calls)
	f.mu.Unlock()
	h.r.PodForCgroup(unknown)
	time.Sleep(50 * time.Millisecond)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) != calls {
		t.Errorf("lookups went from %d to %d for a settled cgroup", calls, len(f.calls))
	}
}

// TestSourceFailures: a failing source is logged at most once per interval
// per operation, counted, and marked down until it recovers.
func TestSourceFailures(t *testing.T) {
	tr := newTree(t)
	f := newFake(SourceCRI)
	h := run(t, tr, f)
	sink := <-f.sinkCh
	for range 50 {
		sink.Failed(SourceCRI, "list", errors.New("list pod sandboxes on /run/containerd/containerd.sock: connection refused"))
	}
	if got := value(h.r.metrics.sourceErrors.WithLabelValues(SourceCRI, "list")); got != 50 {
		t.Errorf("source errors = %v, want 50", got)
	}
	if got := value(h.r.metrics.sourceUp.WithLabelValues(SourceCRI)); got != 0 {
		t.Errorf("source_up = %v while failing", got)
	}
	if n := strings.Count(h.logs.String(), "metadata source failed"); n != 1 {
		t.Errorf("%d log lines for 50 identical failures, want 1:\n%s", n, h.logs.String())
	}
	sink.Recovered(SourceCRI)
	if got := value(h.r.metrics.sourceUp.WithLabelValues(SourceCRI)); got != 1 {
		t.Errorf("source_up = %v after recovery", got)
	}
	if !strings.Contains(h.logs.String(), "works again") {
		t.Error("no log line for the recovery")
	}
}

// TestContainerRemoved: when the sources drop a container whose cgroup is
// gone, the entry goes and OnChange(nil) says so.
func TestContainerRemoved(t *testing.T) {
	tr := newTree(t, podDir+"/"+cidA)
	f := newFake(SourceCRI, criPod())
	h := run(t, tr, f)
	sink := <-f.sinkCh
	id := tr.id(podDir + "/" + cidA)
	if p, _ := h.r.PodForCgroup(id); p == nil {
		t.Fatal("no pod")
	}
	if err := os.Remove(filepath.Join(tr.root, podDir, cidA)); err != nil {
		t.Fatal(err)
	}
	p := criPod()
	p.Containers = nil
	sink.Replace(SourceCRI, []source.Pod{p})
	h.changes.wait(t, id, 5*time.Second, func(p *event.Pod) bool { return p == nil })
	if _, ok := (*h.r.hot.Load())[id]; ok {
		t.Error("entry of the removed container is still there")
	}
	sink.Replace(SourceCRI, nil)
	waitFor(t, func() bool { return len(h.r.Workloads()) == 0 })
}

// TestWorkloadOverContainer: a Workload file naming a cgroup wins over
// what the path says, for the cgroup and its descendants.
func TestWorkloadOverContainer(t *testing.T) {
	tr := newTree(t, "/system.slice/web.service/worker", "/system.slice/web.service2")
	w := source.Pod{Key: "shop/web", Name: "web", Namespace: "shop", Workload: "web", WorkloadKind: "Workload",
		Labels: map[string]string{"app": "web"}, CgroupPath: "/system.slice/web.service"}
	h := run(t, tr, newFake(SourceWorkloads, w))
	for _, d := range []string{"/system.slice/web.service", "/system.slice/web.service/worker"} {
		if p, _ := h.r.PodForCgroup(tr.id(d)); p == nil || p.Name != "web" {
			t.Errorf("%s: %+v, want workload web", d, p)
		}
	}
	if p, _ := h.r.PodForCgroup(tr.id("/system.slice/web.service2")); p != nil {
		t.Errorf("a sibling whose name extends the workload's got %+v", p)
	}
}

// value reads a counter or gauge.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return -1
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// TestWorkloadsChange: a pod of another node (addresses, no cgroup here)
// changing its labels changes no cgroup, so OnChange is silent, but
// OnWorkloadsChange reports it; a source repeating itself reports nothing.
func TestWorkloadsChange(t *testing.T) {
	tr := newTree(t)
	remote := source.Pod{Key: "shop/db-0", UID: "db-uid", Name: "db-0", Namespace: "shop",
		Labels: map[string]string{"app": "db"}, IPs: []netip.Addr{netip.MustParseAddr("10.1.2.3")}}
	f := newFake(SourceKubernetes, remote)
	h := run(t, tr, f)
	var calls atomic.Int32
	h.r.OnWorkloadsChange(func() { calls.Add(1) })
	sink := <-f.sinkCh

	marker := source.Pod{Key: "shop/marker", UID: "marker-uid", Name: "marker", Namespace: "shop"}
	sink.Replace(SourceKubernetes, []source.Pod{remote})
	sink.Upsert(SourceKubernetes, marker)
	waitFor(t, func() bool { return len(h.r.Workloads()) == 2 })
	if n := calls.Load(); n != 1 {
		t.Errorf("OnWorkloadsChange called %d times for a repeated pod and a new one, want 1 (the new one)", n)
	}

	relabelled := remote
	relabelled.Labels = map[string]string{"app": "db", "tier": "data"}
	sink.Upsert(SourceKubernetes, relabelled)
	waitFor(t, func() bool { return calls.Load() == 2 })
	var got map[string]string
	for _, w := range h.r.Workloads() {
		if w.Pod.Name == "db-0" {
			got = map[string]string{}
			for _, l := range w.Pod.Labels {
				got[l.Key] = l.Value
			}
		}
	}
	want := map[string]string{"app": "db", "tier": "data", "io.kubernetes.pod.namespace": "shop"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("labels after the change (-want +got):\n%s", diff)
	}
	h.changes.mu.Lock()
	defer h.changes.mu.Unlock()
	if len(h.changes.seen) != 0 {
		t.Errorf("OnChange called %d times for pods without cgroups here", len(h.changes.seen))
	}
}
