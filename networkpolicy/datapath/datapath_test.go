package datapath_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf/rlimit"
	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/internal/kerneltest"
	"github.com/vigilsec/vigil/kprobes"
	"github.com/vigilsec/vigil/networkpolicy"
	"github.com/vigilsec/vigil/networkpolicy/conntest"
	"github.com/vigilsec/vigil/networkpolicy/datapath"
	"github.com/vigilsec/vigil/networkpolicy/datapath/testpods"
)

func TestMain(m *testing.M) {
	testpods.RunHelperIfRequested()
	os.Exit(m.Run())
}

// source is the workload source of the tests: the pods of the current
// step, with the cgroups of their endpoints.
type source struct {
	mu   sync.Mutex
	pods []datapath.Pod
}

func (s *source) Pods(context.Context) ([]datapath.Pod, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]datapath.Pod(nil), s.pods...), nil
}

func (s *source) set(res *networkpolicy.Resources, eps map[string]*testpods.Endpoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pods = nil
	for _, p := range res.Pods {
		dp := datapath.Pod{Pod: *p}
		if ep := eps[p.Key()]; ep != nil {
			dp.CgroupIDs = []uint64{ep.CgroupID}
		}
		s.pods = append(s.pods, dp)
	}
}

func requireDatapath(t testing.TB) string {
	t.Helper()
	kerneltest.Require(t)
	for _, f := range []kprobes.Feature{kprobes.FeatureCgroupConnect4, kprobes.FeatureCgroupSendmsg4, kprobes.FeatureCgroupSKB, kprobes.FeatureRingbuf} {
		kerneltest.SkipIfNotSupported(t, f)
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
	root, err := datapath.Cgroup2Root()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// records collects the datapath's verdict records.
type records struct {
	mu   sync.Mutex
	list []datapath.Record
}

func collect(t *testing.T, d *datapath.Datapath) *records {
	rd, err := d.Records()
	if err != nil {
		t.Fatal(err)
	}
	r := &records{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			rec, err := rd.Read()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.list = append(r.list, rec)
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() { rd.Close(); <-done })
	return r
}

func (r *records) take() []datapath.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.list
	r.list = nil
	return out
}

func newDatapath(t testing.TB, root string, src datapath.WorkloadSource) *datapath.Datapath {
	t.Helper()
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	d, err := datapath.New(datapath.Config{Workloads: src, CgroupRoot: root, RecordsPerSecond: -1}, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Load(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return d
}

func protoName(p networkpolicy.Protocol) string {
	switch p {
	case networkpolicy.ProtoUDP:
		return "udp"
	case networkpolicy.ProtoSCTP:
		return "sctp"
	}
	return "tcp"
}

// TestPrivTruthTables runs every truth table against the real datapath:
// pods are network namespaces with cgroups, probes are real connections,
// and every result must be what the table expects. Denied flows must fail
// the way the datapath promises (EPERM at once when the source's egress
// policy denies, a timeout when the destination drops), and each denied or
// audited flow must be reported with the rule the engine names.
func TestPrivTruthTables(t *testing.T) {
	root := requireDatapath(t)
	files, err := conntest.Files(filepath.Join("..", "testdata", "truth"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) { runTable(t, root, f) })
	}
}

type expectation struct {
	c        conntest.Case
	from, to *testpods.Endpoint
	addr     netip.AddrPort
	probe    string
	want     []string
	record   *datapath.Record // the record the kernel must send, if any
}

func runTable(t *testing.T, root, file string) {
	s, err := conntest.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if s.OfflineOnly != "" {
		t.Skip(s.OfflineOnly)
	}
	cl := testpods.New(t, root)
	eps := map[string]*testpods.Endpoint{}
	byIP := map[netip.Addr]*testpods.Endpoint{}
	// Pods of every step (a relabelled pod keeps its namespace and cgroup).
	for i := range s.Steps {
		res, err := s.Resources(i)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range res.Pods {
			if eps[p.Key()] != nil {
				continue
			}
			if len(p.IPs) == 0 {
				t.Fatalf("pod %s has no address (status.podIP) to put on its namespace", p.Key())
			}
			eps[p.Key()] = cl.Add(p.Key(), p.IPs, true)
			for _, ip := range p.IPs {
				byIP[ip] = eps[p.Key()]
			}
		}
	}
	endpoint := func(ref string) (*testpods.Endpoint, netip.Addr) {
		if ip, err := netip.ParseAddr(ref); err == nil {
			if byIP[ip] == nil {
				byIP[ip] = cl.Add(ref, []netip.Addr{ip}, false)
			}
			return byIP[ip], ip
		}
		ep := eps[ref]
		if ep == nil {
			t.Fatalf("unknown pod %s", ref)
		}
		return ep, ep.IPs[0]
	}
	listening := map[string]string{}
	src := &source{}
	d := newDatapath(t, root, src)
	recs := collect(t, d)
	ctx := context.Background()
	for i, step := range s.Steps {
		res, err := s.Resources(i)
		if err != nil {
			t.Fatal(err)
		}
		src.set(res, eps)
		if _, err := d.Apply(ctx, res); err != nil {
			t.Fatalf("step %q: apply: %v", step.Name, err)
		}
		e := d.Engine()
		var exps []*expectation
		for ci, c := range step.Cases {
			from, fromIP := endpoint(c.From)
			to, toIP := endpoint(c.To)
			if fromIP.Is4() != toIP.Is4() {
				t.Logf("%s: %s: skipped, the endpoints have no address of a common family", c.Where, c)
				continue
			}
			key := fmt.Sprintf("%s %s %d", to.Name, protoName(c.Protocol), c.Port)
			if _, ok := listening[key]; !ok {
				listening[key] = to.Listen(protoName(c.Protocol), c.Port)
				if r := listening[key]; r != "ok" && r != testpods.NoSCTP {
					t.Fatalf("listen %s: %s", key, r)
				}
			}
			if listening[key] == testpods.NoSCTP {
				t.Logf("%s: %s: skipped, this kernel has no SCTP (the offline engine covers it)", c.Where, c)
				continue
			}
			x := &expectation{c: c, from: from, to: to, addr: netip.AddrPortFrom(toIP, c.Port), probe: protoName(c.Protocol)}
			if c.Protocol == networkpolicy.ProtoUDP && ci%2 == 1 {
				x.probe = "udp-connect" // half of the UDP cases go through connect()
			}
			fromEP, err := e.ParseEndpoint(c.From)
			if err != nil {
				t.Fatal(err)
			}
			toEP, err := e.ParseEndpoint(c.To)
			if err != nil {
				t.Fatal(err)
			}
			res := e.Check(fromEP, toEP, c.Protocol, c.Port)
			if res.Verdict != c.Expect {
				t.Errorf("%s: %s: the engine says %s, the table %s", c.Where, c, res.Verdict, c.Expect)
			}
			switch {
			case c.Expect != networkpolicy.Deny:
				x.want = []string{testpods.Allowed}
			case res.Egress != nil && res.Egress.Verdict == networkpolicy.Deny:
				x.want = []string{testpods.EPERM}
			default:
				x.want = []string{testpods.Timeout}
			}
			side, dir := res.Egress, networkpolicy.Egress
			if side == nil || side.Verdict == networkpolicy.Allow {
				side, dir = res.Ingress, networkpolicy.Ingress
			}
			if c.Expect != networkpolicy.Allow && side != nil {
				x.record = &datapath.Record{Verdict: side.Verdict, Direction: dir, Protocol: c.Protocol, RuleID: side.Rule(), Destination: x.addr}
			}
			exps = append(exps, x)
		}
		var wg sync.WaitGroup
		sem := make(chan struct{}, 48)
		got := make([]string, len(exps))
		for j, x := range exps {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				r := x.from.Probe(x.probe, x.addr, 300*time.Millisecond)
				if r == testpods.Timeout && x.want[0] == testpods.Allowed {
					r = x.from.Probe(x.probe, x.addr, 3*time.Second) // a slow first exchange is not a drop
				}
				got[j] = r
			}()
		}
		wg.Wait()
		time.Sleep(100 * time.Millisecond)
		seen := recs.take()
		for j, x := range exps {
			if !contains(x.want, got[j]) {
				t.Errorf("%s: step %q: %s (%s): kernel %s, want %v", x.c.Where, step.Name, x.c, x.probe, got[j], x.want)
				continue
			}
			if x.record != nil && !hasRecord(seen, x.record) {
				t.Errorf("%s: step %q: %s: no %s record of rule %d (%s) among %d records", x.c.Where, step.Name, x.c,
					x.record.Verdict, x.record.RuleID, describeRule(e, x.record.RuleID), len(seen))
			}
		}
	}
}

func describeRule(e *networkpolicy.Engine, id uint32) string {
	r, _ := e.Rule(id)
	return r.String()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func hasRecord(list []datapath.Record, want *datapath.Record) bool {
	for _, r := range list {
		if r.Verdict == want.Verdict && r.Direction == want.Direction && r.Protocol == want.Protocol &&
			r.RuleID == want.RuleID && r.Destination == want.Destination && r.Rule.Policy != nil {
			return true
		}
	}
	return false
}

// TestPrivIncrementalApply checks that Apply only touches what changed and
// that a pod coming and going changes its own entries only.
func TestPrivIncrementalApply(t *testing.T) {
	root := requireDatapath(t)
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
	src := &source{}
	d := newDatapath(t, root, src)
	ctx := context.Background()
	apply := func(res *networkpolicy.Resources) datapath.ApplyStats {
		t.Helper()
		src.set(res, pods)
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
	// A new pod: its address and cgroup appear; the server's policy map,
	// which names the client's identity, is rebuilt.
	res.Pods = append(res.Pods, pod("b", "client", "198.18.0.12"))
	st := apply(res)
	if st.CgroupsUpdated != 1 || st.IPCacheUpdated != 1 || st.PolicyMapsRemoved != 0 {
		t.Errorf("adding a pod: %+v", st)
	}
	if r := b.Probe("tcp", netip.MustParseAddrPort("198.18.0.11:80"), 300*time.Millisecond); r != testpods.Timeout {
		t.Errorf("b -> a with the deny rule in place: %s, want a drop", r)
	}
	// The pod goes away: its entries go, the server keeps its map.
	res.Pods = res.Pods[:1]
	st = apply(res)
	if st.CgroupsRemoved != 1 || st.IPCacheRemoved != 1 || st.PolicyMapsRemoved != 0 {
		t.Errorf("removing a pod: %+v", st)
	}
	if r := b.Probe("tcp", netip.MustParseAddrPort("198.18.0.11:80"), 2*time.Second); r != testpods.Allowed {
		t.Errorf("b -> a once b is no pod of the cluster: %s, want allowed", r)
	}
}

// TestPrivConfigErrors checks that configuration problems name the field.
func TestConfigErrors(t *testing.T) {
	_, err := datapath.New(datapath.Config{}, nil)
	if err == nil || err.Error() != "datapath config: Workloads is required" {
		t.Errorf("New without workloads: %v", err)
	}
	_, err = datapath.New(datapath.Config{Workloads: &source{}, CgroupRoot: "/nonexistent"}, nil)
	if err == nil || err.Error() != `datapath config: CgroupRoot "/nonexistent" is not a directory` {
		t.Errorf("New with a bad cgroup root: %v", err)
	}
}
