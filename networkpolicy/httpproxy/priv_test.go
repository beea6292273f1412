package httpproxy_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/examples"
	"github.com/vigilsec/vigil/internal/manifest"
	"github.com/vigilsec/vigil/networkpolicy"
	"github.com/vigilsec/vigil/networkpolicy/datapath"
	"github.com/vigilsec/vigil/networkpolicy/datapath/testpods"
	"github.com/vigilsec/vigil/networkpolicy/httpproxy"
)

func TestMain(m *testing.M) {
	testpods.RunHelperIfRequested()
	os.Exit(m.Run())
}

type flowLog struct {
	mu    sync.Mutex
	flows []string
	ch    chan string
}

func (l *flowLog) report(f *httpproxy.Flow) {
	s := fmt.Sprintf("%s %s %s -> %s %s %s %d by %s", f.Verdict, f.Direction, f.From, f.To, f.HTTP.Method, f.HTTP.URL, f.HTTP.Code, strings.Join(f.Policies, ","))
	select {
	case l.ch <- s:
	default: // a benchmark's flows: nobody reads them
	}
}

func (l *flowLog) next(t *testing.T) string {
	t.Helper()
	select {
	case s := <-l.ch:
		return s
	case <-time.After(60 * time.Second):
		t.Fatal("no flow reported")
		return ""
	}
}

// deathStar sets up Cilium's tutorial scenario with its L7 policy,
// unchanged, in the kernel: three pods as network namespaces, the
// datapath and the proxy.
func deathStar(t testing.TB, visibility ...uint16) (ds, tie, xwing *testpods.Endpoint, d *datapath.Datapath, p *httpproxy.Proxy, nss []httpproxy.Netns, log *flowLog) {
	src, err := examples.DeathStarL7.ReadFile("deathstar-l7/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return deathStarWith(t, string(src), visibility...)
}

// deathStarWith is deathStar with another policy.
func deathStarWith(t testing.TB, policy string, visibility ...uint16) (ds, tie, xwing *testpods.Endpoint, d *datapath.Datapath, p *httpproxy.Proxy, nss []httpproxy.Netns, log *flowLog) {
	root := testpods.Require(t)
	cl := testpods.New(t, root)
	addr := func(s string) []netip.Addr { return []netip.Addr{netip.MustParseAddr(s)} }
	ds = cl.Add("default/deathstar", addr("198.18.20.1"), true)
	tie = cl.Add("default/tiefighter", addr("198.18.20.2"), true)
	xwing = cl.Add("default/xwing", addr("198.18.20.3"), true)
	eps := map[string]*testpods.Endpoint{"default/deathstar": ds, "default/tiefighter": tie, "default/xwing": xwing}
	docs, err := manifest.Split("deathstar-l7/policy.yaml", []byte(policy))
	if err != nil {
		t.Fatal(err)
	}
	res, err := networkpolicy.Parse(docs)
	if err != nil {
		t.Fatal(err)
	}
	pod := func(name, ip string, labels map[string]string) *networkpolicy.Pod {
		return &networkpolicy.Pod{Namespace: "default", Name: name, Labels: labels, ServiceAccount: "default", IPs: addr(ip)}
	}
	res.Pods = []*networkpolicy.Pod{
		pod("deathstar", "198.18.20.1", map[string]string{"org": "empire", "class": "deathstar"}),
		pod("tiefighter", "198.18.20.2", map[string]string{"org": "empire", "class": "tiefighter"}),
		pod("xwing", "198.18.20.3", map[string]string{"org": "alliance", "class": "xwing"}),
	}
	w := &testpods.Workloads{}
	w.Set(res, eps)
	lg := logrus.New()
	lg.SetLevel(logrus.WarnLevel)
	d, err = datapath.New(datapath.Config{Workloads: w, CgroupRoot: root, HTTPVisibility: visibility}, lg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Load(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	log = &flowLog{ch: make(chan string, 100)}
	p, err = httpproxy.New(httpproxy.Config{Conns: d, Policy: d, PodAddr: d.CgroupAddr, Report: log.report}, lg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if err := d.SetHTTPProxy(p.Port(), uint32(os.Getpid())); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Apply(context.Background(), res); err != nil {
		t.Fatal(err)
	}
	for _, ep := range []*testpods.Endpoint{tie, xwing} {
		ns, err := httpproxy.NetnsOf(fmt.Sprintf("/proc/%d/ns/net", ep.PID()))
		if err != nil {
			t.Fatal(err)
		}
		nss = append(nss, ns)
	}
	if err := p.SetNetns(nss); err != nil {
		t.Fatal(err)
	}
	if r := ds.HTTPServe(80); r != "ok" {
		t.Fatal(r)
	}
	return ds, tie, xwing, d, p, nss, log
}

// TestPrivDeathStarL7 is the L7 part of Cilium's tutorial: the tiefighter
// may land (POST /v1/request-landing) but gets 403 at the exhaust port
// (PUT /v1/exhaust-port), which never reaches the Death Star; the xwing is
// dropped at L3/L4 and never proxied. Each request is a flow.
func TestPrivDeathStarL7(t *testing.T) {
	_, tie, xwing, d, p, _, log := deathStar(t)
	const url = "http://198.18.20.1"
	if got := tie.HTTP("POST", url+"/v1/request-landing", 20*time.Second); got != "200 Ship landed" {
		t.Errorf("tiefighter landing: %s", got)
	}
	if got := tie.HTTP("PUT", url+"/v1/exhaust-port", 20*time.Second); got != "403 Access denied" {
		t.Errorf("tiefighter at the exhaust port: %s", got)
	}
	if got := xwing.HTTP("POST", url+"/v1/request-landing", time.Second); got != testpods.Timeout {
		t.Errorf("xwing landing: %s, want a drop", got)
	}
	for _, want := range []string{
		"FORWARDED INGRESS default/tiefighter -> default/deathstar POST http://198.18.20.1/v1/request-landing 200 by CiliumNetworkPolicy default/rule1",
		"DROPPED INGRESS default/tiefighter -> default/deathstar PUT http://198.18.20.1/v1/exhaust-port 403 by CiliumNetworkPolicy default/rule1",
	} {
		if got := log.next(t); got != want {
			t.Errorf("flow\n%s\nwant\n%s", got, want)
		}
	}
	st, err := d.HTTPStats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Redirected == 0 || st.RefusedNoProxy+st.RefusedBind+st.RefusedIPv6+st.RefusedNoFreeSlot != 0 {
		t.Errorf("datapath HTTP stats %+v", st)
	}
	if ps := p.Stats(); ps.Denied != 1 || ps.Forwarded != 1 || ps.UnknownSlot != 0 {
		t.Errorf("proxy stats %+v", ps)
	}
}

// TestPrivFailClosed: with the proxy's listeners gone, governed connects
// are refused (never let through to the Death Star); with no proxy
// configured they fail with EPERM; both recover when the proxy is back.
func TestPrivFailClosed(t *testing.T) {
	_, tie, _, d, p, nss, _ := deathStar(t)
	const put = "http://198.18.20.1/v1/exhaust-port"
	if got := tie.HTTPNew("PUT", put, 20*time.Second); got != "403 Access denied" {
		t.Fatalf("with the proxy: %s", got)
	}
	if err := p.SetNetns(nil); err != nil {
		t.Fatal(err)
	}
	if got := tie.HTTPNew("PUT", put, 20*time.Second); got != testpods.Refused {
		t.Errorf("without listeners: %s, want refused", got)
	}
	if err := d.SetHTTPProxy(0, 0); err != nil {
		t.Fatal(err)
	}
	if got := tie.HTTPNew("PUT", put, 20*time.Second); got != testpods.EPERM {
		t.Errorf("without a proxy: %s, want eperm", got)
	}
	if st, _ := d.HTTPStats(); st.RefusedNoProxy != 1 {
		t.Errorf("datapath HTTP stats %+v", st)
	}
	if err := d.SetHTTPProxy(p.Port(), uint32(os.Getpid())); err != nil {
		t.Fatal(err)
	}
	if err := p.SetNetns(nss); err != nil {
		t.Fatal(err)
	}
	if got := tie.HTTPNew("PUT", put, 20*time.Second); got != "403 Access denied" {
		t.Errorf("proxy back: %s", got)
	}
	if got := tie.HTTPNew("POST", "http://198.18.20.1/v1/request-landing", 20*time.Second); got != "200 Ship landed" {
		t.Errorf("proxy back, landing: %s", got)
	}
}

// TestPrivVisibility: --http-visibility 8080 sends the tiefighter's
// connections to 8080 through the proxy, reported without restriction;
// port 80, which no rules.http governs, never reaches the proxy; and a
// destination that refuses the proxy's connect resets the client.
func TestPrivVisibility(t *testing.T) {
	ds, tie, _, _, p, _, log := deathStarWith(t, benchPolicy(false), 8080)
	if r := ds.HTTPServe(8080); r != "ok" {
		t.Fatal(r)
	}
	if got := tie.HTTPNew("PUT", "http://198.18.20.1:8080/v1/exhaust-port", 20*time.Second); got != "500 Panic: deathstar exploded (PUT /v1/exhaust-port)" {
		t.Errorf("visibility port: %s", got)
	}
	if got, want := log.next(t), "FORWARDED EGRESS default/tiefighter -> default/deathstar PUT http://198.18.20.1:8080/v1/exhaust-port 500 by "; got != want {
		t.Errorf("flow\n%s\nwant\n%s", got, want)
	}
	// HTTP/2 with prior knowledge through the real redirect: the stream
	// is reported with its path and status.
	if got := tie.HTTP2("POST", "http://198.18.20.1:8080/v1/exhaust-port", 20*time.Second); got != "500 Panic: deathstar exploded (POST /v1/exhaust-port)" {
		t.Errorf("h2c on the visibility port: %s", got)
	}
	if got, want := log.next(t), "FORWARDED EGRESS default/tiefighter -> default/deathstar POST http://198.18.20.1:8080/v1/exhaust-port 500 by "; got != want {
		t.Errorf("HTTP/2 flow\n%s\nwant\n%s", got, want)
	}
	if st := p.Stats(); st.HTTP2Parsed != 1 || st.HTTP2Errors != 0 {
		t.Errorf("proxy stats %+v", st)
	}
	before := p.Stats().Accepted
	if got := tie.HTTPNew("PUT", "http://198.18.20.1/v1/exhaust-port", 20*time.Second); got != "500 Panic: deathstar exploded (PUT /v1/exhaust-port)" {
		t.Errorf("ungoverned port: %s", got)
	}
	if after := p.Stats().Accepted; after != before {
		t.Errorf("a connection to the ungoverned port went through the proxy (%d accepted, was %d)", after, before)
	}
	// Nothing listens on the xwing's 8080: the proxy's connect is
	// refused, and so is the client's connection.
	if got := tie.HTTPNew("GET", "http://198.18.20.3:8080/", 20*time.Second); got != "reset" && got != testpods.Refused {
		t.Errorf("refused upstream: %s, want a reset", got)
	}
	if st := p.Stats(); st.DialFailed != 1 {
		t.Errorf("proxy stats %+v", st)
	}
}
