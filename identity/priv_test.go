package identity

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/identity/cgroup"
	"github.com/vigilsec/vigil/internal/containerdtest"
	"github.com/vigilsec/vigil/internal/kerneltest"
)

// changes records OnChange calls.
type changes struct {
	mu   sync.Mutex
	seen []change
	ch   chan struct{}
}

func newChanges(r *Resolver) *changes {
	c := &changes{ch: make(chan struct{}, 1)}
	r.OnChange(func(id uint64, pod *event.Pod) {
		c.mu.Lock()
		c.seen = append(c.seen, change{id, pod})
		c.mu.Unlock()
		select {
		case c.ch <- struct{}{}:
		default:
		}
	})
	return c
}

// wait returns the last change reported for id that satisfies ok.
func (c *changes) wait(t *testing.T, id uint64, timeout time.Duration, ok func(*event.Pod) bool) *event.Pod {
	t.Helper()
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		for i := len(c.seen) - 1; i >= 0; i-- {
			if c.seen[i].id == id && ok(c.seen[i].pod) {
				p := c.seen[i].pod
				c.mu.Unlock()
				return p
			}
		}
		c.mu.Unlock()
		select {
		case <-c.ch:
		case <-deadline:
			t.Fatalf("no OnChange for cgroup %d within %v", id, timeout)
		}
	}
}

func testLogger(t *testing.T) logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(testWriter{t})
	l.SetLevel(logrus.DebugLevel)
	return l
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// startResolver runs a resolver until the test ends.
func startResolver(t *testing.T, cfg Config) (*Resolver, *changes) {
	t.Helper()
	r, err := New(cfg, "", testLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	c := newChanges(r)
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
	case <-time.After(containerdtest.Patience):
		t.Fatal("resolver did not sync")
	}
	return r, c
}

func criConfig(e *containerdtest.Env, poll time.Duration) Config {
	cfg := DefaultConfig()
	cfg.CRIEndpoints = []string{e.Socket}
	cfg.CRIPollInterval = poll
	cfg.Kubernetes = KubernetesOff
	return cfg
}

// cgroupOf returns the cgroup id of a process the way the kernel reports
// it: the inode of the directory /proc/PID/cgroup names.
func cgroupOf(t *testing.T, pid int) (uint64, string) {
	t.Helper()
	mp, err := cgroup.Mountpoint()
	if err != nil {
		t.Fatal(err)
	}
	p, err := cgroup.ProcPath("/proc", pid)
	if err != nil {
		t.Fatal(err)
	}
	id, err := cgroup.ID(filepath.Join(mp, p))
	if err != nil {
		t.Fatal(err)
	}
	return id, p
}

// waitPod polls the hot path until the cgroup has a pod.
func waitPod(t *testing.T, r *Resolver, id uint64, timeout time.Duration) *event.Pod {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if p, _ := r.PodForCgroup(id); p != nil {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("cgroup %d has no pod after %v", id, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var webPod = containerdtest.Pod{
	Name: "web-7d4b9c8f6d-x2x4k", Namespace: "shop", UID: "0b6f3c2e-5a41-4d8e-9b7a-2c1d3e4f5a6b",
	Labels:      map[string]string{"app": "web", "tier": "front"},
	Annotations: map[string]string{"kubernetes.io/config.source": "api"},
	Network:     true,
}

// TestPrivCRIPod: a process started in a CRI-created pod's container maps,
// by its cgroup id, to the pod's name, namespace, uid, labels, container
// name and image, and the pod's address is listed with its cgroups.
func TestPrivCRIPod(t *testing.T) {
	kerneltest.Require(t)
	e := containerdtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*containerdtest.Patience)
	defer cancel()
	r, _ := startResolver(t, criConfig(e, 200*time.Millisecond))

	sb := e.RunPod(ctx, t, webPod)
	cid := e.CreateContainer(ctx, t, sb, webPod, containerdtest.Container{Name: "nginx", Command: []string{"/bin/sleep", "600"}})
	e.StartContainer(ctx, t, cid)
	id, path := cgroupOf(t, e.MainPID(ctx, t, cid))

	got := waitPod(t, r, id, containerdtest.Patience)
	want := &event.Pod{
		Namespace: "shop", Name: webPod.Name, UID: webPod.UID,
		Labels: labels("app", "web", PodNamespaceLabel, "shop", "tier", "front"),
		Container: event.Container{ID: cid, Name: "nginx", ImageName: containerdtest.BusyboxImage,
			ImageID: got.Container.ImageID, StartTime: got.Container.StartTime},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pod of cgroup %s (-want +got):\n%s", path, diff)
	}
	if !strings.HasPrefix(got.Container.ImageID, "sha256:") {
		t.Errorf("image id %q, want the image's sha256 id", got.Container.ImageID)
	}
	if d := time.Since(got.Container.StartTime); d < 0 || d > containerdtest.Patience {
		t.Errorf("container start time %v is not the start of this container", got.Container.StartTime)
	}

	// The workload list has the pod with its address and this cgroup.
	var w *Workload
	for _, x := range r.Workloads() {
		if x.Pod.UID == webPod.UID {
			w = &x
		}
	}
	if w == nil {
		t.Fatalf("pod %s not in Workloads()", webPod.Name)
	}
	if w.Pod.Container != (event.Container{}) {
		t.Errorf("workload pod carries a container: %+v", w.Pod.Container)
	}
	if len(w.IPs) != 1 || !netip.MustParsePrefix("10.213.0.0/16").Contains(w.IPs[0]) {
		t.Errorf("workload addresses %v, want one from the test bridge", w.IPs)
	}
	if !contains(w.CgroupIDs, id) {
		t.Errorf("workload cgroups %v lack the container's %d", w.CgroupIDs, id)
	}
}

func contains(ids []uint64, id uint64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// TestPrivCRIStartRace: the runtime's listing is far away (an hour), so
// only the lookup on a miss can find a container that just started: its
// cgroup is first pending, then OnChange reports the pod.
func TestPrivCRIStartRace(t *testing.T) {
	kerneltest.Require(t)
	e := containerdtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*containerdtest.Patience)
	defer cancel()
	r, changes := startResolver(t, criConfig(e, time.Hour))

	p := webPod
	p.Name, p.UID, p.Network = "race", "5e0c1a7b-9d3f-4b2a-8c6e-1f0a2b3c4d5e", false
	sb := e.RunPod(ctx, t, p)
	cid := e.CreateContainer(ctx, t, sb, p, containerdtest.Container{Name: "first", Command: []string{"/bin/sleep", "600"}})
	e.StartContainer(ctx, t, cid)
	id, _ := cgroupOf(t, e.MainPID(ctx, t, cid))

	pod, pending := r.PodForCgroup(id)
	if pod != nil {
		t.Fatalf("pod known before any listing or lookup: %+v", pod)
	}
	if !pending {
		t.Fatal("a new container's cgroup is not pending: its events would go out without pod")
	}
	got := changes.wait(t, id, containerdtest.Patience, func(p *event.Pod) bool { return p != nil })
	if got.Name != "race" || got.Container.Name != "first" || got.Container.ID != cid {
		t.Errorf("OnChange pod = %+v, want pod race, container first", got)
	}
	if now, pending := r.PodForCgroup(id); now != got || pending {
		t.Errorf("after OnChange PodForCgroup = %p, %v; want %p, false", now, pending, got)
	}
}

// TestPrivCRIRemoved: a container that exits and is removed leaves no entry:
// OnChange(nil) for its cgroup, which is no longer indexed, and its pod
// leaves the workload list once removed.
func TestPrivCRIRemoved(t *testing.T) {
	kerneltest.Require(t)
	e := containerdtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*containerdtest.Patience)
	defer cancel()
	r, changes := startResolver(t, criConfig(e, 200*time.Millisecond))

	p := webPod
	p.Name, p.UID, p.Network = "short", "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", false
	sb := e.RunPod(ctx, t, p)
	cid := e.CreateContainer(ctx, t, sb, p, containerdtest.Container{Name: "job", Command: []string{"/bin/sleep", "600"}})
	e.StartContainer(ctx, t, cid)
	id, _ := cgroupOf(t, e.MainPID(ctx, t, cid))
	waitPod(t, r, id, containerdtest.Patience)

	e.RemoveContainer(ctx, t, cid)
	changes.wait(t, id, containerdtest.Patience, func(p *event.Pod) bool { return p == nil })
	if _, ok := (*r.hot.Load())[id]; ok {
		t.Errorf("removed container's cgroup %d is still in the map", id)
	}
	e.RemovePod(ctx, t, sb)
	deadline := time.Now().Add(containerdtest.Patience)
	for {
		found := false
		for _, w := range r.Workloads() {
			found = found || w.Pod.UID == p.UID
		}
		if !found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("removed pod is still in Workloads()")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPrivWorkloadFile: a process placed in a test-created cgroup named by
// a Workload file gets the workload's identity, and so does one in a child
// cgroup; editing the file changes the labels (OnChange).
func TestPrivWorkloadFile(t *testing.T) {
	kerneltest.Require(t)
	mp, err := cgroup.Mountpoint()
	if err != nil {
		kerneltest.Skip(t, "%v", err)
	}
	base := fmt.Sprintf("/vigil-test-%d", os.Getpid())
	svc := base + "/web.service"
	child := svc + "/worker"
	for _, d := range []string{base, svc, child} {
		if err := os.Mkdir(filepath.Join(mp, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var procs []*exec.Cmd
	t.Cleanup(func() {
		for _, c := range procs {
			c.Process.Kill()
			c.Wait()
		}
		for _, d := range []string{child, svc, base} {
			os.Remove(filepath.Join(mp, d))
		}
	})
	start := func(cg string) int {
		// The test binary itself sleeps (TestHelperSleep): no sleep(1)
		// needed in the VM tier.
		c := exec.Command(os.Args[0], "-test.run=^TestHelperSleep$")
		c.Env = append(os.Environ(), helperSleepEnv+"=1")
		c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, c)
		if err := os.WriteFile(filepath.Join(mp, cg, "cgroup.procs"), []byte(strconv.Itoa(c.Process.Pid)), 0o644); err != nil {
			t.Fatal(err)
		}
		return c.Process.Pid
	}
	svcID, svcPath := cgroupOf(t, start(svc))
	childID, _ := cgroupOf(t, start(child))
	if svcPath != svc {
		t.Fatalf("process is in %s, want %s", svcPath, svc)
	}

	file := filepath.Join(t.TempDir(), "workloads.yaml")
	doc := func(tier string) string {
		return fmt.Sprintf(`apiVersion: vigil.dev/v1alpha1
kind: Workload
metadata:
  name: web
  namespace: shop
  labels: {app: web, tier: %s}
spec:
  cgroupPath: %s
  ips: [192.0.2.10]
`, tier, svc)
	}
	if err := os.WriteFile(file, []byte(doc("front")), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.CRIEndpoints = []string{CRINone}
	cfg.Kubernetes = KubernetesOff
	cfg.WorkloadFiles = []string{file}
	r, changes := startResolver(t, cfg)

	want := &event.Pod{Namespace: "shop", Name: "web", Workload: "web", WorkloadKind: "Workload",
		Labels: labels("app", "web", PodNamespaceLabel, "shop", "tier", "front")}
	for _, id := range []uint64{svcID, childID} {
		got := waitPod(t, r, id, 5*time.Second)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("pod of cgroup %d (-want +got):\n%s", id, diff)
		}
	}
	ws := r.Workloads()
	if len(ws) != 1 || !contains(ws[0].CgroupIDs, svcID) || !contains(ws[0].CgroupIDs, childID) ||
		len(ws[0].IPs) != 1 || ws[0].IPs[0] != netip.MustParseAddr("192.0.2.10") {
		t.Errorf("Workloads() = %+v, want web with both cgroups and 192.0.2.10", ws)
	}

	if err := os.WriteFile(file, []byte(doc("back")), 0o644); err != nil {
		t.Fatal(err)
	}
	got := changes.wait(t, svcID, 5*time.Second, func(p *event.Pod) bool {
		return p != nil && len(p.Labels) == 3 && p.Labels[2].Value == "back"
	})
	if got.Name != "web" {
		t.Errorf("after the edit: %+v", got)
	}
}

// labels builds sorted labels from key, value pairs.
func labels(kv ...string) []event.Label {
	var out []event.Label
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, event.Label{Key: kv[i], Value: kv[i+1]})
	}
	return out
}

const helperSleepEnv = "VIGIL_IDENTITY_HELPER_SLEEP"

// TestHelperSleep is a process for the tests to place in cgroups; it does
// nothing unless started by them.
func TestHelperSleep(t *testing.T) {
	if os.Getenv(helperSleepEnv) != "1" {
		return // only a helper process of TestPrivWorkloadFile
	}
	time.Sleep(10 * time.Minute)
}
