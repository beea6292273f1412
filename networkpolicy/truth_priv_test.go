package networkpolicy_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vigilsec/vigil/networkpolicy"
	"github.com/vigilsec/vigil/networkpolicy/conntest"
	"github.com/vigilsec/vigil/networkpolicy/datapath"
	"github.com/vigilsec/vigil/networkpolicy/datapath/testpods"
)

func TestMain(m *testing.M) {
	testpods.RunHelperIfRequested()
	os.Exit(m.Run())
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
//
// One cluster and one datapath serve every table: endpoints are made as
// tables first need them and kept, and each step of each table is one
// incremental Apply, so the tables also exercise updates between unrelated
// states.
func TestPrivTruthTables(t *testing.T) {
	root := testpods.Require(t)
	files, err := conntest.Files(filepath.Join("testdata", "truth"))
	if err != nil {
		t.Fatal(err)
	}
	env := &tableEnv{
		cl:        testpods.New(t, root),
		src:       &testpods.Workloads{},
		eps:       map[string]*testpods.Endpoint{},
		byIP:      map[netip.Addr]*testpods.Endpoint{},
		listening: map[string]string{},
	}
	env.d = testpods.NewDatapath(t, root, env.src, -1)
	env.recs = testpods.Record(t, env.d)
	for _, f := range files {
		s, err := conntest.Load(f)
		if err != nil {
			t.Fatal(err)
		}
		if s.OfflineOnly != "" {
			t.Logf("%s is checked offline only: %s", filepath.Base(f), s.OfflineOnly)
			continue
		}
		t.Run(filepath.Base(f), func(t *testing.T) { runTable(t, env, f) })
	}
}

// tableEnv is what the tables share.
type tableEnv struct {
	cl        *testpods.Cluster
	d         *datapath.Datapath
	src       *testpods.Workloads
	recs      *testpods.Recorder
	eps       map[string]*testpods.Endpoint // pods by namespace/name
	byIP      map[netip.Addr]*testpods.Endpoint
	listening map[string]string
}

type expectation struct {
	c        conntest.Case
	from, to *testpods.Endpoint
	addr     netip.AddrPort
	probe    string
	want     []string
	record   *datapath.Record // the record the kernel must send, if any
}

func runTable(t *testing.T, env *tableEnv, file string) {
	s, err := conntest.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	cl, eps, byIP, listening, src, d, recs := env.cl, env.eps, env.byIP, env.listening, env.src, env.d, env.recs
	// Pods of every step (a relabelled pod keeps its namespace and cgroup).
	for i := range s.Steps {
		res, err := s.Resources(i)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range res.Pods {
			if ep := eps[p.Key()]; ep != nil {
				if !slices.Equal(ep.IPs, p.IPs) {
					t.Fatalf("pod %s has addresses %v here and %v in another table", p.Key(), p.IPs, ep.IPs)
				}
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
	ctx := context.Background()
	recs.Take()
	for i, step := range s.Steps {
		res, err := s.Resources(i)
		if err != nil {
			t.Fatal(err)
		}
		src.Set(res, eps)
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
		sem := make(chan struct{}, 16)
		got := make([]string, len(exps))
		for j, x := range exps {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				// A timeout where none is expected may be a slow machine (the
				// VM tier emulates its CPU): ask again, with more patience.
				r := x.from.Probe(x.probe, x.addr, 150*time.Millisecond)
				for _, wait := range []time.Duration{3 * time.Second, 10 * time.Second} {
					if r != testpods.Timeout || x.want[0] == testpods.Timeout {
						break
					}
					r = x.from.Probe(x.probe, x.addr, wait)
				}
				got[j] = r
			}()
		}
		wg.Wait()
		// The verdict records come through a ring buffer read by another
		// goroutine: wait until every expected one is in (the emulated
		// VMs are slow), or a deadline says it is missing.
		var seen []datapath.Record
		for deadline := time.Now().Add(5 * time.Second); ; {
			seen = append(seen, recs.Take()...)
			missing := false
			for j, x := range exps {
				if x.record != nil && contains(x.want, got[j]) && !hasRecord(seen, x.record) {
					missing = true
					break
				}
			}
			if !missing || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
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
