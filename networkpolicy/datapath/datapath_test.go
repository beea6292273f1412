package datapath_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/vigilsec/vigil/networkpolicy"
	"github.com/vigilsec/vigil/networkpolicy/datapath"
	"github.com/vigilsec/vigil/networkpolicy/datapath/testpods"
)

func TestMain(m *testing.M) {
	testpods.RunHelperIfRequested()
	os.Exit(m.Run())
}

// TestPrivIncrementalApply checks that Apply only touches what changed and
// that a pod coming and going changes its own entries only.
func TestPrivIncrementalApply(t *testing.T) {
	root := testpods.Require(t)
	cl := testpods.New(t, root)
	a := cl.Add("x/a", []netip.Addr{netip.MustParseAddr("198.18.0.11")}, true)
	b := cl.Add("x/b", []netip.Addr{netip.MustParseAddr("198.18.0.12")}, true)
	pods := map[string]*testpods.Endpoint{"x/a": a, "x/b": b}
	pod := func(name, app string, ip string) *networkpolicy.Pod {
		return &networkpolicy.Pod{Namespace: "x", Name: name, Labels: map[string]string{"app": app}, ServiceAccount: "default",
			IPs: []netip.Addr{netip.MustParseAddr(ip)}}
	}
	pol, err := networkpolicy.Load(filepath.Join("testdata", "deny-from-b.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	src := &testpods.Workloads{}
	d := testpods.NewDatapath(t, root, src, -1)
	ctx := context.Background()
	apply := func(res *networkpolicy.Resources) datapath.ApplyStats {
		t.Helper()
		src.Set(res, pods)
		st, err := d.Apply(ctx, res)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	res := &networkpolicy.Resources{Pods: []*networkpolicy.Pod{pod("a", "server", "198.18.0.11")}, Policies: pol.Policies}
	first := apply(res)
	if first.PolicyMapsWritten != 1 || first.CgroupsUpdated != 1 {
		t.Errorf("first apply: %+v", first)
	}
	if again := apply(res); again != (datapath.ApplyStats{}) {
		t.Errorf("applying the same state again changed the kernel: %+v", again)
	}
	if err := a.Listen("tcp", 80); err != "ok" {
		t.Fatal(err)
	}
	// A new pod: its address and cgroup appear; the server's entries for
	// the client's new identity are written into its map in place (no
	// address had that identity yet), and the client's identity, which no
	// policy selects, gets no map.
	res.Pods = append(res.Pods, pod("b", "client", "198.18.0.12"))
	st := apply(res)
	if st.CgroupsUpdated != 1 || st.IPCacheUpdated != 1 || st.PolicyMapsRemoved != 0 || st.PolicyMapsWritten != 0 || st.PolicyEntriesWritten == 0 {
		t.Errorf("adding a pod: %+v", st)
	}
	if r := b.Probe("tcp", netip.MustParseAddrPort("198.18.0.11:80"), 300*time.Millisecond); r != testpods.Timeout {
		t.Errorf("b -> a with the deny rule in place: %s, want a drop", r)
	}
	// The pod goes away: its address, its cgroup and the server's entries
	// for its identity go, the server keeps its map.
	res.Pods = res.Pods[:1]
	st = apply(res)
	if st.CgroupsRemoved != 1 || st.IPCacheRemoved != 1 || st.PolicyMapsRemoved != 0 || st.PolicyMapsWritten != 0 || st.PolicyEntriesRemoved == 0 {
		t.Errorf("removing a pod: %+v", st)
	}
	if r := b.Probe("tcp", netip.MustParseAddrPort("198.18.0.11:80"), 2*time.Second); r != testpods.Allowed {
		t.Errorf("b -> a once b is no pod of the cluster: %s, want allowed", r)
	}
}

// staticPods is a workload source that always lists the same pods.
type staticPods []datapath.Pod

func (s staticPods) Pods(context.Context) ([]datapath.Pod, error) { return s, nil }

// TestPrivConfigErrors checks that configuration problems name the field.
func TestConfigErrors(t *testing.T) {
	_, err := datapath.New(datapath.Config{}, nil)
	if err == nil || err.Error() != "datapath config: Workloads is required" {
		t.Errorf("New without workloads: %v", err)
	}
	_, err = datapath.New(datapath.Config{Workloads: &testpods.Workloads{}, CgroupRoot: "/nonexistent"}, nil)
	if err == nil || err.Error() != `datapath config: CgroupRoot "/nonexistent" is not a directory` {
		t.Errorf("New with a bad cgroup root: %v", err)
	}
}

// TestPrivCloseLeavesNothing checks that Close detaches every program and
// frees every map, inner policy maps included.
func TestPrivCloseLeavesNothing(t *testing.T) {
	root := testpods.Require(t)
	pol, err := networkpolicy.Load(filepath.Join("testdata", "deny-from-b.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// A pod with a cgroup (one that does not exist: no socket is in it),
	// so that its identity gets a policy map.
	src := staticPods{{Pod: networkpolicy.Pod{Namespace: "x", Name: "a", Labels: map[string]string{"app": "server"}}, CgroupIDs: []uint64{1 << 50}}}
	d := testpods.NewDatapath(t, root, src, -1)
	if _, err := d.Apply(context.Background(), pol); err != nil {
		t.Fatal(err)
	}
	progs, maps := d.ObjectIDs()
	if len(progs) != 7 || len(maps) != 19 {
		t.Fatalf("loaded %d programs and %d maps, want 7 (6 attached and the DNS parser's test entry) and 19 (14, the 4 of the HTTP redirect and one policy map)", len(progs), len(maps))
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	// The kernel frees maps after the programs using them, asynchronously.
	var left []string
	for i := 0; i < 100; i++ {
		left = left[:0]
		for _, id := range progs {
			if p, err := ebpf.NewProgramFromID(id); err == nil {
				p.Close()
				left = append(left, fmt.Sprintf("program %d", id))
			}
		}
		for _, id := range maps {
			if m, err := ebpf.NewMapFromID(id); err == nil {
				m.Close()
				left = append(left, fmt.Sprintf("map %d", id))
			}
		}
		if len(left) == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("after Close: %v remain", left)
}

// TestPrivLoopbackAndNode checks that a pod isolated both ways still talks
// to itself over 127.0.0.1 and ::1 and is reachable from its node, while
// its own pod address and its egress to the node are policed.
func TestPrivLoopbackAndNode(t *testing.T) {
	root := testpods.Require(t)
	cl := testpods.New(t, root)
	ip, nodeIP := netip.MustParseAddr("198.18.0.11"), netip.MustParseAddr("198.18.0.254")
	a := cl.Add("x/a", []netip.Addr{ip}, true)
	node := cl.Add("node", []netip.Addr{nodeIP}, false)
	docs := `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
`
	path := filepath.Join(t.TempDir(), "deny.yaml")
	if err := os.WriteFile(path, []byte(docs), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := networkpolicy.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	res.Pods = []*networkpolicy.Pod{{Namespace: "x", Name: "a", IPs: []netip.Addr{ip}}}
	res.HostIPs = []netip.Addr{nodeIP}
	src := &testpods.Workloads{}
	src.Set(res, map[string]*testpods.Endpoint{"x/a": a})
	d := testpods.NewDatapath(t, root, src, -1)
	if _, err := d.Apply(context.Background(), res); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"tcp", "udp"} {
		if r := a.Listen(l, 80); r != "ok" {
			t.Fatal(r)
		}
		if r := node.Listen(l, 80); r != "ok" {
			t.Fatal(r)
		}
	}
	for _, c := range []struct {
		probe string
		want  string
	}{{"tcp", testpods.Allowed}, {"udp", testpods.Allowed}} {
		if got := node.Probe(c.probe, netip.AddrPortFrom(ip, 80), 2*time.Second); got != c.want {
			t.Errorf("node -> pod %s: %s, want %s", c.probe, got, c.want)
		}
	}
	if got := a.Probe("tcp", netip.AddrPortFrom(nodeIP, 80), 2*time.Second); got != testpods.EPERM {
		t.Errorf("pod -> node tcp: %s, want %s (egress is policed)", got, testpods.EPERM)
	}
	for _, c := range []struct {
		probe, addr, want string
	}{
		{"tcp", "127.0.0.1:80", testpods.Allowed},
		{"udp", "127.0.0.1:80", testpods.Allowed},
		{"tcp", "[::1]:80", testpods.Allowed},
		{"udp-connect", "[::1]:80", testpods.Allowed},
		{"tcp", "198.18.0.11:80", testpods.EPERM},
	} {
		if got := a.Probe(c.probe, netip.MustParseAddrPort(c.addr), 2*time.Second); got != c.want {
			t.Errorf("%s %s: %s, want %s", c.probe, c.addr, got, c.want)
		}
	}
}
