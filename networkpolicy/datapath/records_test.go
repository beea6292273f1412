package datapath_test

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/networkpolicy"
	"github.com/vigilsec/vigil/networkpolicy/datapath"
	"github.com/vigilsec/vigil/networkpolicy/datapath/testpods"
)

type pair struct {
	d      *datapath.Datapath
	a, b   *testpods.Endpoint
	recs   *testpods.Recorder
	aAddrs []netip.Addr
}

// twoPods makes x/a (app=server) and x/b (app=client) with the policies of
// testdata/records.yaml.
func twoPods(t *testing.T, ipsA, ipsB []netip.Addr, rate int) *pair {
	root := testpods.Require(t)
	cl := testpods.New(t, root)
	a := cl.Add("x/a", ipsA, true)
	b := cl.Add("x/b", ipsB, true)
	pol, err := networkpolicy.Load(filepath.Join("testdata", "records.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	res := &networkpolicy.Resources{Policies: pol.Policies, Pods: []*networkpolicy.Pod{
		{Namespace: "x", Name: "a", Labels: map[string]string{"app": "server"}, ServiceAccount: "default", IPs: ipsA},
		{Namespace: "x", Name: "b", Labels: map[string]string{"app": "client"}, ServiceAccount: "default", IPs: ipsB},
	}}
	src := &testpods.Workloads{}
	src.Set(res, map[string]*testpods.Endpoint{"x/a": a, "x/b": b})
	d := testpods.NewDatapath(t, root, src, rate)
	if _, err := d.Apply(context.Background(), res); err != nil {
		t.Fatal(err)
	}
	for _, l := range []struct {
		proto string
		port  uint16
	}{{"tcp", 80}, {"tcp", 81}, {"tcp", 82}, {"udp", 80}, {"udp", 81}, {"udp", 83}} {
		if r := a.Listen(l.proto, l.port); r != "ok" {
			t.Fatalf("listen %s %d: %s", l.proto, l.port, r)
		}
	}
	return &pair{d: d, a: a, b: b, recs: testpods.Record(t, d), aAddrs: ipsA}
}

func waitRecords(r *testpods.Recorder, n int) []datapath.Record {
	var all []datapath.Record
	for i := 0; i < 50 && len(all) < n; i++ {
		time.Sleep(20 * time.Millisecond)
		all = append(all, r.Take()...)
	}
	return all
}

// TestPrivRecords checks what a user reads from a verdict record: the
// hook, direction, addresses and ports, the process for decisions made in
// its context, the cgroup, and the deciding policy, and the flow it becomes.
func TestPrivRecords(t *testing.T) {
	for _, fam := range []struct {
		name   string
		ipA    netip.Addr
		ipB    netip.Addr
		hookC  datapath.Hook
		hookSM datapath.Hook
	}{
		{"ipv4", netip.MustParseAddr("198.18.0.11"), netip.MustParseAddr("198.18.0.12"), datapath.HookConnect4, datapath.HookSendmsg4},
		{"ipv6", netip.MustParseAddr("2001:db8::11"), netip.MustParseAddr("2001:db8::12"), datapath.HookConnect6, datapath.HookSendmsg6},
	} {
		t.Run(fam.name, func(t *testing.T) {
			p := twoPods(t, []netip.Addr{fam.ipA}, []netip.Addr{fam.ipB}, -1)
			at := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(fam.ipA, port) }
			checks := []struct {
				probe string
				port  uint16
				want  string
			}{
				{"tcp", 80, testpods.Allowed},
				{"tcp", 81, testpods.EPERM},   // egress deny at the client: connect()
				{"udp", 81, testpods.EPERM},   // the same for an unconnected datagram: sendmsg()
				{"tcp", 82, testpods.Allowed}, // audited
				{"udp", 83, testpods.Allowed},
				{"udp", 80, testpods.Timeout}, // dropped at the server's ingress
			}
			for _, c := range checks {
				got := p.b.Probe(c.probe, at(c.port), 500*time.Millisecond)
				if got == testpods.Timeout && c.want != testpods.Timeout {
					got = p.b.Probe(c.probe, at(c.port), 5*time.Second) // a slow machine, not a drop
				}
				if got != c.want {
					t.Errorf("b -> a %s/%d: %s, want %s", c.probe, c.port, got, c.want)
				}
			}
			recs := waitRecords(p.recs, 4)
			find := func(hook datapath.Hook, port uint16) *datapath.Record {
				for i := range recs {
					if recs[i].Hook == hook && recs[i].Destination.Port() == port {
						return &recs[i]
					}
				}
				t.Errorf("no record of %s to port %d among %v", hook, port, recs)
				return nil
			}
			pid := uint32(p.b.PID())
			if r := find(fam.hookC, 81); r != nil {
				want := fmt.Sprintf("%s %s %s->%s TCP thread set, tgid %d cgroup %d rule %s",
					networkpolicy.Deny, networkpolicy.Egress, fam.ipB, at(81), pid, p.b.CgroupID, "CiliumNetworkPolicy x/client spec.egressDeny[0]")
				got := fmt.Sprintf("%s %s %s->%s %s thread set, tgid %d cgroup %d rule %s %s", r.Verdict, r.Direction, r.Source.Addr(), r.Destination,
					r.Protocol, r.TGID, r.CgroupID, r.Rule.Policy, r.Rule.Path)
				if r.PID == 0 {
					t.Errorf("connect record without the thread id: %+v", r)
				}
				if got != want {
					t.Errorf("connect record:\n got %s\nwant %s", got, want)
				}
				f := r.Flow()
				if f.Verdict != event.VerdictDropped || len(f.EgressDeniedBy) != 1 || f.EgressDeniedBy[0] != "CiliumNetworkPolicy x/client" ||
					f.DestinationPort != 81 || f.Direction != event.DirectionEgress {
					t.Errorf("flow of the connect record: %+v", f)
				}
			}
			if r := find(fam.hookSM, 81); r != nil && (r.Protocol != networkpolicy.ProtoUDP || r.TGID != pid) {
				t.Errorf("sendmsg record: %+v", r)
			}
			if r := find(fam.hookC, 82); r != nil && (r.Verdict != networkpolicy.Audit || r.Rule.Policy == nil || r.Rule.Policy.Name != "audit-82") {
				t.Errorf("audit record: %+v", r)
			}
			if r := find(datapath.HookSKBIngress, 80); r != nil {
				if r.Verdict != networkpolicy.Deny || r.Direction != networkpolicy.Ingress || r.CgroupID != p.a.CgroupID ||
					r.Source.Addr() != fam.ipB || r.Reason != networkpolicy.ReasonDefaultDeny || r.PID != 0 {
					t.Errorf("ingress drop record: %+v", r)
				}
				if f := r.Flow(); len(f.IngressDeniedBy) != 1 || f.IngressDeniedBy[0] != "NetworkPolicy x/server" {
					t.Errorf("flow of the ingress record: %+v", f)
				}
			}
		})
	}
}

// TestPrivRecordRateLimit floods denied datagrams and checks that the
// kernel reports at most its budget and counts the rest.
func TestPrivRecordRateLimit(t *testing.T) {
	ipA, ipB := netip.MustParseAddr("198.18.0.11"), netip.MustParseAddr("198.18.0.12")
	p := twoPods(t, []netip.Addr{ipA}, []netip.Addr{ipB}, 5)
	const n = 200
	if got := p.b.Command(fmt.Sprintf("bench %s %d", netip.AddrPortFrom(ipA, 81), n)); got == "" {
		t.Fatal("bench failed")
	}
	recs := waitRecords(p.recs, 5)
	st, err := p.d.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 || len(recs) > n/2 {
		t.Errorf("%d records for %d denied connects with a budget of 5/s per CPU", len(recs), n)
	}
	if st.Denied < n || st.RecordsSuppressed == 0 || st.Records+st.RecordsSuppressed < n {
		t.Errorf("stats %+v after %d denied connects", st, n)
	}
	// The next record of a CPU carries the count of those it suppressed
	// before it. Budgets and counts are per CPU and the scheduler picks the
	// CPU of each probe: probe until one lands on a CPU that suppressed
	// (a few tries, within the budget).
	time.Sleep(1100 * time.Millisecond)
	var carried uint32
	var later []datapath.Record
	for try := 0; try < 8 && carried == 0; try++ {
		p.b.Probe("udp-connect", netip.AddrPortFrom(ipA, 81), 100*time.Millisecond)
		rs := waitRecords(p.recs, 1)
		later = append(later, rs...)
		for _, r := range rs {
			carried += r.Suppressed
		}
		time.Sleep(250 * time.Millisecond)
	}
	if carried == 0 {
		t.Errorf("no record carried the suppressed count: %+v", later)
	}
}
