package datapath_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/internal/kerneltest"
	"github.com/vigilsec/vigil/internal/manifest"
	"github.com/vigilsec/vigil/networkpolicy"
	"github.com/vigilsec/vigil/networkpolicy/datapath"
	"github.com/vigilsec/vigil/networkpolicy/datapath/testpods"
)

const fqdnTestPolicy = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: client, namespace: x}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEntities: [world]
    toPorts:
    - ports: [{port: "53", protocol: UDP}, {port: "53", protocol: TCP}]
  - toFQDNs:
    - matchPattern: "*.fqdn.test"
    toPorts:
    - ports: [{port: "443", protocol: TCP}]
`

// The addresses of the tests' DNS tables: name i answers 10.77.0.0/16 + i.
var fqdnPrefix = netip.MustParsePrefix("10.77.0.0/16")

func fqdnAddr(i int) netip.Addr {
	b := fqdnPrefix.Addr().As4()
	b[2], b[3] = byte(i>>8), byte(i)
	return netip.AddrFrom4(b)
}

// dnsmasq starts Debian's dnsmasq in the network namespace of endpoint
// srv, answering n%d.fqdn.test with fqdnAddr(i) and other.test with
// 10.78.0.1, with the given TTL.
//
// Where the tier has no dnsmasq (the VMs) the helper's own server
// (miekg/dns) answers the same table instead; on the host dnsmasq is
// required.
func dnsmasq(t testing.TB, srv *testpods.Endpoint, listen netip.Addr, n, ttl int) {
	t.Helper()
	if _, err := exec.LookPath("dnsmasq"); err != nil && !kerneltest.OnHost() {
		if r := srv.ServeDNS(netip.AddrPortFrom(listen, 53), ttl); r != "ok" {
			t.Fatal(r)
		}
		return
	}
	bin := kerneltest.NeedTool(t, "dnsmasq")
	nsenter := kerneltest.NeedTool(t, "nsenter")
	dir := t.TempDir()
	hosts := filepath.Join(dir, "hosts")
	f, err := os.Create(hosts)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for i := 0; i < n; i++ {
		fmt.Fprintf(w, "%s n%d.fqdn.test\n", fqdnAddr(i), i)
	}
	fmt.Fprintf(w, "10.78.0.1 other.test\n")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cmd := exec.Command(nsenter, "--net=/proc/"+strconv.Itoa(srv.PID())+"/ns/net", bin,
		"--keep-in-foreground", "--no-resolv", "--no-hosts", "--addn-hosts="+hosts, "--user=root",
		"--listen-address="+listen.String(), "--bind-interfaces", "--port=53", "--pid-file=",
		"--local-ttl="+strconv.Itoa(ttl), "--cache-size=0", "--log-facility=-")
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dnsmasq: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	// Ready when it answers.
	for i := 0; ; i++ {
		if r := srv.Resolve(netip.AddrPortFrom(listen, 53), "other.test"); r == "10.78.0.1" {
			return
		} else if i == 100 {
			t.Fatalf("dnsmasq does not answer: %s\n%s", r, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fqdnRig is a client pod under fqdnTestPolicy, a DNS server (dnsmasq)
// and a TCP echo server on every address of fqdnPrefix, outside the
// cluster.
type fqdnRig struct {
	d      *datapath.Datapath
	client *testpods.Endpoint
	server *testpods.Endpoint
	dns    netip.AddrPort
	res    *networkpolicy.Resources
	cfg    datapath.Config
}

func newFQDNRig(t *testing.T, cfg datapath.Config, names, ttl int) *fqdnRig {
	return newFQDNRigPolicy(t, cfg, fqdnTestPolicy, names, ttl)
}

func newFQDNRigPolicy(t testing.TB, cfg datapath.Config, policy string, names, ttl int) *fqdnRig {
	root := testpods.Require(t)
	cl := testpods.New(t, root)
	srvIP := netip.MustParseAddr("198.51.100.53")
	client := cl.Add("x/client", []netip.Addr{netip.MustParseAddr("198.18.0.11")}, true)
	server := cl.Add("dns", []netip.Addr{srvIP}, false)
	for _, r := range []string{server.RouteLocal(fqdnPrefix), client.RouteVia(fqdnPrefix, srvIP), server.ListenEcho(443)} {
		if r != "ok" {
			t.Fatal(r)
		}
	}
	dnsmasq(t, server, srvIP, names, ttl)
	docs, err := manifest.Split("p.yaml", []byte(policy))
	if err != nil {
		t.Fatal(err)
	}
	res, err := networkpolicy.Parse(docs)
	if err != nil {
		t.Fatal(err)
	}
	res.Pods = []*networkpolicy.Pod{{Namespace: "x", Name: "client", Labels: map[string]string{"app": "client"},
		ServiceAccount: "default", IPs: client.IPs}}
	src := &testpods.Workloads{}
	src.Set(res, map[string]*testpods.Endpoint{"x/client": client})
	cfg.Workloads, cfg.CgroupRoot, cfg.RecordsPerSecond = src, root, -1
	r := &fqdnRig{client: client, server: server, dns: netip.AddrPortFrom(srvIP, 53), res: res, cfg: cfg}
	r.d = r.start(t, res)
	return r
}

// start loads a datapath of the rig's configuration and applies res.
func (r *fqdnRig) start(t testing.TB, res *networkpolicy.Resources) *datapath.Datapath {
	t.Helper()
	var log logrus.FieldLogger
	if _, ok := t.(*testing.B); ok {
		// A benchmark's log lines would break its result lines.
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	d, err := datapath.New(r.cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Load(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if _, err := d.Apply(context.Background(), res); err != nil {
		t.Fatal(err)
	}
	return d
}

func parseLoop(t testing.TB, r string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, f := range strings.Fields(r) {
		k, v, _ := strings.Cut(f, "=")
		if n, err := strconv.Atoi(v); err == nil {
			out[k] = n
		}
	}
	if _, ok := out["lookups"]; !ok {
		t.Fatalf("dnsloop: %s", r)
	}
	return out
}

// TestPrivFQDNFirstConnect resolves 10,000 names at a real DNS server
// (dnsmasq) from a pod whose policy allows them by pattern, each to an
// address of its own, and connects right after each answer: every connect
// before its lookup is refused, every connect after it succeeds. Names no
// pattern matches stay refused. The VM tier, whose emulated CPUs are about
// ten times slower, proves the same of each kernel's datapath with 1,000.
func TestPrivFQDNFirstConnect(t *testing.T) {
	n := 10000
	if !kerneltest.OnHost() {
		n = 1000
	}
	r := newFQDNRig(t, datapath.Config{}, n, 300)
	if got := r.client.Probe("tcp", netip.AddrPortFrom(fqdnAddr(0), 443), time.Second); got != testpods.EPERM {
		t.Fatalf("connect before any lookup: %s, want %s", got, testpods.EPERM)
	}
	total := map[string]int{}
	for start := 0; start < n; start += 1000 { // n is a multiple of 1000
		res := r.client.DNSLoop(r.dns, "n%d.fqdn.test", 443, start, 1000, true)
		for k, v := range parseLoop(t, res) {
			total[k] += v
		}
		if !strings.Contains(res, "first-error=none") {
			t.Errorf("names %d-%d: %s", start, start+999, res)
		}
	}
	want := map[string]int{"lookups": n, "connects": n, "eperm": 0, "before-eperm": n}
	for k, v := range want {
		if total[k] != v {
			t.Errorf("%s = %d, want %d (all: %v)", k, total[k], v, total)
		}
	}
	if got := r.client.Resolve(r.dns, "other.test"); got != "10.78.0.1" {
		t.Fatalf("resolve other.test: %s", got)
	}
	if got := r.client.Probe("tcp", netip.MustParseAddrPort("10.78.0.1:443"), time.Second); got != testpods.EPERM {
		t.Errorf("connect to a name no pattern matches: %s, want %s", got, testpods.EPERM)
	}
	if got := r.client.Probe("tcp", netip.AddrPortFrom(fqdnAddr(5), 80), time.Second); got != testpods.EPERM {
		t.Errorf("connect to a learned address on a port the rule does not open: %s, want %s", got, testpods.EPERM)
	}
	st, err := r.d.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.DNSLearned < uint64(n) || st.FQDNAllowed < uint64(n) || st.DNSMalformed != 0 {
		t.Errorf("stats %+v: want at least %d learned and allowed, none malformed", st, n)
	}
	learned, err := r.d.Learned()
	if err != nil {
		t.Fatal(err)
	}
	if len(learned) != n {
		t.Errorf("%d learned addresses, want %d", len(learned), n)
	}
}

// TestPrivFQDNExpiry: an address stays allowed for the minimum TTL when
// the answer's TTL is shorter; after it expires a new connection is
// refused while the connection made before keeps working, and a sweep
// removes the entry.
func TestPrivFQDNExpiry(t *testing.T) {
	r := newFQDNRig(t, datapath.Config{DNSMinTTL: time.Second}, 4, 0)
	addr := netip.AddrPortFrom(fqdnAddr(1), 443)
	if got := r.client.Resolve(r.dns, "n1.fqdn.test"); got != fqdnAddr(1).String() {
		t.Fatalf("resolve: %s", got)
	}
	if got := r.client.Hold("c", addr); got != testpods.Allowed {
		t.Fatalf("connect after the lookup: %s", got)
	}
	learned, err := r.d.Learned()
	if err != nil || len(learned) != 1 || learned[0].Addr != fqdnAddr(1) || learned[0].Names[0].TTL > time.Second {
		t.Fatalf("learned %+v, %v; want %s for at most the minimum TTL of 1s", learned, err, fqdnAddr(1))
	}
	// Wait for the expiry the kernel reports, not for a duration.
	deadline := learned[0].Names[0].TTL
	time.Sleep(deadline + 100*time.Millisecond)
	if got := r.client.Probe("tcp", addr, time.Second); got != testpods.EPERM {
		t.Errorf("connect after the TTL: %s, want %s", got, testpods.EPERM)
	}
	if got := r.client.Held("c"); got != testpods.Allowed {
		t.Errorf("the connection made before expiry: %s, want it working", got)
	}
	if del, remain, err := r.d.SweepFQDN(); err != nil || del != 1 || remain != 0 {
		t.Errorf("sweep: deleted %d, remain %d, %v; want 1 deleted", del, remain, err)
	}
}

// TestPrivFQDNRestart: the learned addresses survive the datapath's end in
// pinned maps, and a new datapath, whose identities are numbered
// differently (another policy with toFQDNs came first), adopts them: a
// name resolved before the restart stays reachable without a new lookup,
// and an address never learned stays refused.
func TestPrivFQDNRestart(t *testing.T) {
	kerneltest.Require(t)
	pin, err := os.MkdirTemp("/sys/fs/bpf", "vigil-dns-test-")
	if err != nil {
		kerneltest.Skip(t, "no bpffs at /sys/fs/bpf: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(pin) })
	r := newFQDNRig(t, datapath.Config{PinDir: filepath.Join(pin, "dns")}, 4, 300)
	addr := netip.AddrPortFrom(fqdnAddr(2), 443)
	if got := r.client.Resolve(r.dns, "n2.fqdn.test"); got != fqdnAddr(2).String() {
		t.Fatalf("resolve: %s", got)
	}
	if got := r.client.Probe("tcp", addr, time.Second); got != testpods.Allowed {
		t.Fatalf("connect after the lookup: %s", got)
	}
	before, _ := r.d.Engine().Names().Identity("n2.fqdn.test")
	if err := r.d.Close(); err != nil {
		t.Fatal(err)
	}
	extra := `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: aaa, namespace: x}
spec:
  endpointSelector: {matchLabels: {app: other}}
  egress:
  - toFQDNs: [{matchPattern: "*.aaa.test"}, {matchName: b.fqdn.test}]
`
	docs, err := manifest.Split("extra.yaml", []byte(extra))
	if err != nil {
		t.Fatal(err)
	}
	more, err := networkpolicy.Parse(docs)
	if err != nil {
		t.Fatal(err)
	}
	res := *r.res
	res.Policies = append(append([]*networkpolicy.Policy(nil), more.Policies...), r.res.Policies...)
	d2 := r.start(t, &res)
	if got := r.client.Probe("tcp", addr, time.Second); got != testpods.Allowed {
		t.Errorf("connect to a name resolved before the restart: %s, want %s", got, testpods.Allowed)
	}
	if got := r.client.Probe("tcp", netip.AddrPortFrom(fqdnAddr(3), 443), time.Second); got != testpods.EPERM {
		t.Errorf("connect to an address never learned: %s, want %s", got, testpods.EPERM)
	}
	learned, err := d2.Learned()
	if err != nil || len(learned) != 1 {
		t.Fatalf("learned after the restart: %+v, %v", learned, err)
	}
	id, ok := d2.Engine().Names().Identity("n2.fqdn.test")
	if id == before {
		t.Fatalf("n2.fqdn.test has identity %d in both runs; the test needs them numbered differently", id)
	}
	if !ok || learned[0].Names[0].Identity != id {
		t.Errorf("adopted entry %+v; want the identity %d of n2.fqdn.test in this run", learned[0], id)
	}

	// An uninstall (vigil agent --cleanup-pins) removes the state.
	dir := filepath.Join(pin, "dns")
	if n, err := datapath.RemovePinned(dir); n != 2 || err != nil {
		t.Errorf("RemovePinned: %d pins, %v; want the two maps", n, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s after RemovePinned: %v, want it gone", dir, err)
	}
	if n, err := datapath.RemovePinned(dir); n != 0 || err != nil {
		t.Errorf("RemovePinned again: %d pins, %v; want none and no error", n, err)
	}
}

const dnsRuleTestPolicy = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: client, namespace: x}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEntities: [world]
    toPorts:
    - ports: [{port: "53", protocol: UDP}, {port: "53", protocol: TCP}]
      rules:
        dns: [{matchPattern: "*.fqdn.test"}]
  - toFQDNs:
    - matchPattern: "*"
    toPorts:
    - ports: [{port: "443", protocol: TCP}]
`

// TestPrivDNSRules: with rules.dns, a pod's query for a name the list
// allows is answered (and its address then reachable), a query for any
// other name is dropped in the kernel (the resolver sees EPERM) and
// reported as refused, so no address is learned from it.
func TestPrivDNSRules(t *testing.T) {
	r := newFQDNRigPolicy(t, datapath.Config{}, dnsRuleTestPolicy, 4, 300)
	rec := testpods.Record(t, r.d)
	if got := r.client.Resolve(r.dns, "n3.fqdn.test"); got != fqdnAddr(3).String() {
		t.Fatalf("resolve an allowed name: %s", got)
	}
	if got := r.client.Probe("tcp", netip.AddrPortFrom(fqdnAddr(3), 443), time.Second); got != testpods.Allowed {
		t.Errorf("connect after an allowed lookup: %s", got)
	}
	if got := r.client.Resolve(r.dns, "other.test"); !strings.Contains(got, "operation not permitted") {
		t.Errorf("resolve a name rules.dns does not allow: %q, want the query refused with EPERM", got)
	}
	if got := r.client.Probe("tcp", netip.MustParseAddrPort("10.78.0.1:443"), time.Second); got != testpods.EPERM {
		t.Errorf("connect to the refused name's address: %s, want %s", got, testpods.EPERM)
	}
	if got := r.client.ResolveTCP(r.dns, "n3.fqdn.test"); !strings.Contains(got, "operation not permitted") {
		t.Errorf("a lookup over TCP at a server whose names are restricted: %q, want EPERM (TCP queries are not checked)", got)
	}
	st, err := r.d.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.DNSQueries < 2 || st.DNSRefused != 1 {
		t.Errorf("stats: %d queries checked, %d refused; want at least 2 and 1", st.DNSQueries, st.DNSRefused)
	}
	var refused []datapath.Record
	for i := 0; i < 50 && len(refused) == 0; i++ {
		for _, x := range rec.Take() {
			if x.Reason == networkpolicy.ReasonDNSRefused {
				refused = append(refused, x)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(refused) == 0 || refused[0].Destination.Port() != 53 || refused[0].Verdict != networkpolicy.Deny {
		t.Errorf("records of refused queries: %+v; want one to port 53, denied", refused)
	}
}

// BenchmarkPrivDNSLookup measures what the datapath adds to a DNS lookup
// of a pod (a query under rules.dns, an answer learned for toFQDNs) at
// dnsmasq: lookups with the programs attached and with them detached, in
// rounds of alternating order, reported per lookup and as the ratio of
// lookups per second (on/off). Beside them, first-connect-ok is the share
// of 10,000 lookups (each a fresh name and address, the query under
// rules.dns, the answer under toFQDNs) whose connect right after the answer
// succeeded, measured once per run.
func BenchmarkPrivDNSLookup(b *testing.B) {
	const names = 10000
	rig := newFQDNRigPolicy(b, datapath.Config{}, dnsRuleTestPolicy, names, 300)
	first := firstConnects(b, rig, names)
	// The rounds attach and detach their own datapath.
	if err := rig.d.Close(); err != nil {
		b.Fatal(err)
	}
	const per = 2000
	var on, off, added []float64
	rounds := 0
	for b.Loop() {
		var pair [2]int64
		for _, attached := range []bool{rounds%2 == 0, rounds%2 != 0} {
			if attached {
				rig.d = rig.start(b, rig.res)
			}
			ns, err := rig.client.DNSBench(rig.dns, "n1.fqdn.test", per)
			if err != nil {
				b.Fatal(err)
			}
			if attached {
				pair[0] = ns
				if err := rig.d.Close(); err != nil {
					b.Fatal(err)
				}
			} else {
				pair[1] = ns
			}
		}
		on, off = append(on, float64(pair[0])), append(off, float64(pair[1]))
		added = append(added, float64(pair[0]-pair[1]))
		rounds++
	}
	// Medians over the rounds: a machine shared with other work slows
	// some rounds by more than the datapath costs.
	b.ReportMetric(median(on), "ns/lookup-on")
	b.ReportMetric(median(off), "ns/lookup-off")
	b.ReportMetric(median(added), "ns/lookup-added")
	b.ReportMetric(median(off)/median(on), "lookups/s-ratio")
	b.ReportMetric(first, "first-connect-ok")
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// firstConnects resolves n names at r's server, each answered with an
// address of its own, and connects right after each answer; it returns the
// share of connects that succeeded.
func firstConnects(b *testing.B, r *fqdnRig, n int) float64 {
	ok := 0
	for start := 0; start < n; start += 1000 {
		res := r.client.DNSLoop(r.dns, "n%d.fqdn.test", 443, start, min(1000, n-start), false)
		tot := parseLoop(b, res)
		if tot["lookups"] != min(1000, n-start) {
			b.Fatalf("names %d-: %s", start, res)
		}
		ok += tot["connects"]
	}
	return float64(ok) / float64(n)
}

// TestPrivFQDNOverTCP: an answer over TCP is learned like one over UDP.
func TestPrivFQDNOverTCP(t *testing.T) {
	r := newFQDNRig(t, datapath.Config{}, 4, 300)
	addr := netip.AddrPortFrom(fqdnAddr(2), 443)
	if got := r.client.Probe("tcp", addr, time.Second); got != testpods.EPERM {
		t.Fatalf("connect before the lookup: %s, want %s", got, testpods.EPERM)
	}
	if got := r.client.ResolveTCP(r.dns, "n2.fqdn.test"); got != fqdnAddr(2).String() {
		t.Fatalf("resolve over TCP: %s", got)
	}
	if got := r.client.Probe("tcp", addr, time.Second); got != testpods.Allowed {
		t.Errorf("connect after a lookup over TCP: %s, want %s", got, testpods.Allowed)
	}
}

// TestPrivFQDNOverTCPSplit: an answer over TCP whose two-byte length comes
// in a segment of its own and the message in the next is learned, so the
// connect after it succeeds.
func TestPrivFQDNOverTCPSplit(t *testing.T) {
	r := newFQDNRig(t, datapath.Config{}, 4, 300)
	split := netip.AddrPortFrom(fqdnAddr(999), 53) // in the server's local prefix; world to the client
	if got := r.server.ServeDNSSplit(split, 300); got != "ok" {
		t.Fatal(got)
	}
	addr := netip.AddrPortFrom(fqdnAddr(3), 443)
	if got := r.client.Probe("tcp", addr, time.Second); got != testpods.EPERM {
		t.Fatalf("connect before the lookup: %s, want %s", got, testpods.EPERM)
	}
	if got := r.client.ResolveTCP(split, "n3.fqdn.test"); got != fqdnAddr(3).String() {
		t.Fatalf("resolve over TCP: %s", got)
	}
	if got := r.client.Probe("tcp", addr, time.Second); got != testpods.Allowed {
		t.Errorf("connect after an answer split over two segments: %s, want %s", got, testpods.Allowed)
	}
	st, err := r.d.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.DNSSplit != 0 || st.DNSLearned < 1 {
		t.Errorf("stats %+v: want the answer learned, none counted split", st)
	}
}
