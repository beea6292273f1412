package httpproxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/internal/manifest"
	"github.com/vigilsec/vigil/networkpolicy"
	"github.com/vigilsec/vigil/networkpolicy/datapath"
)

// The pods of the unit tests live on loopback addresses, so that a real
// server and real clients run without privileges: the deathstar serves on
// 127.0.0.10, the tiefighter connects from 127.0.0.11.
const (
	deathstarIP  = "127.0.0.10"
	tiefighterIP = "127.0.0.11"
)

const podsYAML = `---
apiVersion: v1
kind: Pod
metadata: {name: deathstar, namespace: default, labels: {org: empire, class: deathstar}}
spec: {containers: [{name: c, image: i}]}
status: {podIP: ` + deathstarIP + `}
---
apiVersion: v1
kind: Pod
metadata: {name: tiefighter, namespace: default, labels: {org: empire, class: tiefighter}}
spec: {containers: [{name: c, image: i}]}
status: {podIP: ` + tiefighterIP + `}
`

// fakeConns stands for the datapath's slot map: every slot is a
// connection of the tiefighter's cgroup to the server.
type fakeConns struct {
	mu    sync.Mutex
	dst   netip.AddrPort
	taken map[uint32]bool
	vis   bool
}

func (f *fakeConns) TakeHTTPConn(slot uint32) (datapath.HTTPConn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if slot == 0xdead || f.taken[slot] {
		return datapath.HTTPConn{}, datapath.ErrNoHTTPConn
	}
	f.taken[slot] = true
	return datapath.HTTPConn{CgroupID: 42, TGID: 7, Destination: f.dst, Enforce: !f.vis, Visibility: f.vis}, nil
}

type engineOf struct{ e *networkpolicy.Engine }

func (p engineOf) Engine() *networkpolicy.Engine { return p.e }

type env struct {
	t      testing.TB
	p      *Proxy
	addr   string
	mu     sync.Mutex
	flows  []*Flow
	flowCh chan *Flow
	server *http.Server
	seen   chan string
}

func compile(t testing.TB, policy string) *networkpolicy.Engine {
	t.Helper()
	docs, err := manifest.Split("p.yaml", []byte(policy+podsYAML))
	if err != nil {
		t.Fatal(err)
	}
	res, err := networkpolicy.Parse(docs)
	if err != nil {
		t.Fatal(err)
	}
	e, err := networkpolicy.Compile(res, networkpolicy.NewAllocator())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

const l7Policy = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: rule1, namespace: default}
spec:
  endpointSelector: {matchLabels: {org: empire, class: deathstar}}
  ingress:
  - fromEndpoints: [{matchLabels: {org: empire}}]
    toPorts:
    - ports: [{port: "%d", protocol: TCP}]
      rules:
        http:
        - {method: POST, path: /v1/request-landing}
`

// freePort finds a port free on both loopback addresses.
func freePort(t testing.TB) int {
	l, err := net.Listen("tcp4", deathstarIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// newEnv starts the deathstar's server (handler nil: the landing API), a
// proxy with the L7 policy (or visibility only) and the given limits.
func newEnv(t testing.TB, handler http.Handler, vis bool, cfg Config) *env {
	t.Helper()
	ev := &env{t: t, flowCh: make(chan *Flow, 100), seen: make(chan string, 100)}
	if handler == nil {
		mux := http.NewServeMux()
		mux.HandleFunc("POST /v1/request-landing", func(w http.ResponseWriter, r *http.Request) {
			ev.seen <- r.Method + " " + r.URL.Path
			fmt.Fprintln(w, "Ship landed")
		})
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			ev.seen <- r.Method + " " + r.URL.Path
			http.Error(w, "Panic: deathstar exploded", http.StatusInternalServerError)
		})
		handler = mux
	}
	sl, err := net.Listen("tcp4", deathstarIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	ev.server = &http.Server{Handler: handler}
	go ev.server.Serve(sl)
	t.Cleanup(func() { ev.server.Close() })
	ev.startProxy(netip.MustParseAddrPort(sl.Addr().String()), vis, cfg)
	return ev
}

// startProxy starts the proxy in front of the server at dst.
func (ev *env) startProxy(dst netip.AddrPort, vis bool, cfg Config) {
	t := ev.t
	t.Helper()
	policy := fmt.Sprintf(l7Policy, dst.Port())
	if vis {
		policy = "apiVersion: v1\nkind: Namespace\nmetadata: {name: default}\n"
	}
	e := compile(t, policy)
	cfg.Conns = &fakeConns{dst: dst, taken: map[uint32]bool{}, vis: vis}
	cfg.Policy = engineOf{e}
	cfg.PodAddr = func(cg uint64) (netip.Addr, bool) {
		return netip.MustParseAddr(tiefighterIP), cg == 42
	}
	cfg.Report = func(f *Flow) {
		ev.mu.Lock()
		ev.flows = append(ev.flows, f)
		ev.mu.Unlock()
		ev.flowCh <- f
	}
	cfg.Port = uint16(freePort(t))
	log := logrus.New()
	log.SetOutput(io.Discard)
	p, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if err := p.SetNetns([]Netns{{Key: "self"}}); err != nil {
		t.Fatal(err)
	}
	ev.p = p
	ev.addr = fmt.Sprintf("127.0.0.1:%d", cfg.Port)
}

// dial connects as a redirected socket does: from 127.0.A.B, the slot.
func (ev *env) dial(slot uint32) net.Conn {
	ev.t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, byte(slot>>16), byte(slot>>8), byte(slot))}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp4", ev.addr)
	if err != nil {
		ev.t.Fatal(err)
	}
	ev.t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return c
}

func (ev *env) flow() *Flow {
	ev.t.Helper()
	select {
	case f := <-ev.flowCh:
		return f
	case <-time.After(30 * time.Second):
		ev.t.Fatal("no flow reported")
		return nil
	}
}

func readResponse(t testing.TB, br *bufio.Reader, method string) (int, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp.StatusCode, string(b)
}

// TestDeathStarL7 is Cilium's tutorial on one kept-alive connection: the
// landing request passes, the exhaust port gets 403 without reaching the
// Death Star, and each request is one flow.
func TestDeathStarL7(t *testing.T) {
	ev := newEnv(t, nil, false, Config{})
	c := ev.dial(0x0105)
	br := bufio.NewReader(c)
	fmt.Fprintf(c, "POST /v1/request-landing HTTP/1.1\r\nHost: deathstar.default.svc.cluster.local\r\nContent-Length: 0\r\n\r\n")
	if code, body := readResponse(t, br, "POST"); code != 200 || body != "Ship landed\n" {
		t.Fatalf("landing: %d %q", code, body)
	}
	fmt.Fprintf(c, "PUT /v1/exhaust-port HTTP/1.1\r\nHost: deathstar.default.svc.cluster.local\r\nContent-Length: 0\r\n\r\n")
	if code, body := readResponse(t, br, "PUT"); code != 403 || body != "Access denied\r\n" {
		t.Fatalf("exhaust port: %d %q", code, body)
	}
	// The connection is still usable after the refusal.
	fmt.Fprintf(c, "POST /v1/request-landing HTTP/1.1\r\nHost: deathstar\r\nContent-Length: 0\r\n\r\n")
	if code, _ := readResponse(t, br, "POST"); code != 200 {
		t.Fatalf("second landing: %d", code)
	}
	got := []string{}
	for range 3 {
		f := ev.flow()
		got = append(got, fmt.Sprintf("%s %s %s %s %d %v %s %s->%s", f.Verdict, f.Direction, f.HTTP.Method, f.HTTP.URL, f.HTTP.Code, f.Policies, f.HTTP.L7Type(), f.From, f.To))
	}
	want := []string{
		"FORWARDED INGRESS POST http://deathstar.default.svc.cluster.local/v1/request-landing 200 [CiliumNetworkPolicy default/rule1] RESPONSE default/tiefighter->default/deathstar",
		"DROPPED INGRESS PUT http://deathstar.default.svc.cluster.local/v1/exhaust-port 403 [CiliumNetworkPolicy default/rule1] RESPONSE default/tiefighter->default/deathstar",
		"FORWARDED INGRESS POST http://deathstar/v1/request-landing 200 [CiliumNetworkPolicy default/rule1] RESPONSE default/tiefighter->default/deathstar",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("flows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if s := <-ev.seen; s != "POST /v1/request-landing" {
		t.Errorf("server saw %q first", s)
	}
	if s := <-ev.seen; s != "POST /v1/request-landing" {
		t.Errorf("server saw %q second: the refused request reached it", s)
	}
	if st := ev.p.Stats(); st.Denied != 1 || st.Forwarded != 2 || st.Requests != 3 {
		t.Errorf("stats %+v", st)
	}
}

// TestPipelined: requests written at once are answered and reported in
// their order, the refused one in its place.
func TestPipelined(t *testing.T) {
	ev := newEnv(t, nil, false, Config{})
	c := ev.dial(0x0106)
	req := "POST /v1/request-landing HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc" +
		"GET /v1/request-landing HTTP/1.1\r\nHost: b\r\n\r\n" +
		"POST /v1/request-landing?n=3 HTTP/1.1\r\nHost: c\r\nContent-Length: 0\r\n\r\n" +
		"POST /v1/request-landing HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var codes []int
	for _, m := range []string{"POST", "GET", "POST", "POST"} {
		code, _ := readResponse(t, br, m)
		codes = append(codes, code)
	}
	if fmt.Sprint(codes) != "[200 403 403 200]" {
		t.Errorf("codes %v, want [200 403 403 200] (the query string is part of the path rules match)", codes)
	}
	var got []string
	for range 4 {
		f := ev.flow()
		got = append(got, fmt.Sprintf("%s %s %d", f.HTTP.Method, f.HTTP.URL, f.HTTP.Code))
	}
	want := "POST http://a/v1/request-landing 200|GET http://b/v1/request-landing 403|POST http://c/v1/request-landing?n=3 403|POST http://d/v1/request-landing 200"
	if strings.Join(got, "|") != want {
		t.Errorf("flows %s\nwant  %s", strings.Join(got, "|"), want)
	}
}

// readAll reads what the proxy answers until it closes the connection.
func readAll(t *testing.T, c net.Conn) string {
	t.Helper()
	b, err := io.ReadAll(c)
	if err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("read: %v (got %q)", err, b)
	}
	return string(b)
}

func TestHostileRequests(t *testing.T) {
	for _, tt := range []struct {
		name, req, status string
		stat              func(Stats) uint64
	}{
		{"CL and TE", "POST /v1/request-landing HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /x HTTP/1.1\r\n\r\n",
			"HTTP/1.1 400 Bad Request", func(s Stats) uint64 { return s.Smuggling }},
		{"TE and CL", "POST /v1/request-landing HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-length: 4\r\n\r\n0\r\n\r\n",
			"HTTP/1.1 400 Bad Request", func(s Stats) uint64 { return s.Smuggling }},
		{"two lengths", "POST /v1/request-landing HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
			"HTTP/1.1 400 Bad Request", func(s Stats) uint64 { return s.BadRequest }},
		{"1 MB header", "POST /v1/request-landing HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("a", 1<<20) + "\r\n\r\n",
			"HTTP/1.1 431 Request Header Fields Too Large", func(s Stats) uint64 { return s.HeaderTooLarge }},
		{"HTTP/2 prior knowledge", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
			"HTTP/1.1 400 Bad Request", func(s Stats) uint64 { return s.HTTP2 }},
		{"not HTTP", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
			"HTTP/1.1 400 Bad Request", func(s Stats) uint64 { return s.BadRequest }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ev := newEnv(t, nil, false, Config{})
			c := ev.dial(0x0107)
			go io.WriteString(c, tt.req)
			out := readAll(t, c)
			if !strings.HasPrefix(out, tt.status) {
				t.Errorf("answer %.80q, want %q", out, tt.status)
			}
			if n := tt.stat(ev.p.Stats()); n != 1 {
				t.Errorf("counted %d times, want 1: %+v", n, ev.p.Stats())
			}
			select {
			case s := <-ev.seen:
				t.Errorf("the server got %q", s)
			default:
			}
		})
	}
}

// TestSlowloris: headers trickling in are cut off at HeaderTimeout with
// 408, and other clients are served meanwhile.
func TestSlowloris(t *testing.T) {
	ev := newEnv(t, nil, false, Config{HeaderTimeout: 300 * time.Millisecond})
	slow := ev.dial(0x0108)
	if _, err := io.WriteString(slow, "POST /v1/request-landing HTTP/1.1\r\nHost: a\r\n"); err != nil {
		t.Fatal(err)
	}
	fast := ev.dial(0x0109)
	fmt.Fprintf(fast, "POST /v1/request-landing HTTP/1.1\r\nHost: deathstar\r\nContent-Length: 0\r\n\r\n")
	if code, _ := readResponse(t, bufio.NewReader(fast), "POST"); code != 200 {
		t.Fatalf("the other client got %d", code)
	}
	// Keep trickling: each byte resets no timer.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				if _, err := io.WriteString(slow, "X"); err != nil {
					return
				}
			}
		}
	}()
	out := readAll(t, slow)
	if !strings.HasPrefix(out, "HTTP/1.1 408 Request Timeout") {
		t.Errorf("slow client got %.80q", out)
	}
	if ev.p.Stats().HeaderTimeout != 1 {
		t.Errorf("stats %+v", ev.p.Stats())
	}
}

// TestNoResponse: a server that never answers is reported as a request
// without response, and the client gets 504.
func TestNoResponse(t *testing.T) {
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block })
	ev := newEnv(t, h, false, Config{ResponseTimeout: 200 * time.Millisecond})
	c := ev.dial(0x010a)
	fmt.Fprintf(c, "POST /v1/request-landing HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
	out := readAll(t, c)
	if !strings.HasPrefix(out, "HTTP/1.1 504 Gateway Timeout") {
		t.Errorf("answer %.80q", out)
	}
	f := ev.flow()
	if f.HTTP.Code != 0 || f.HTTP.L7Type() != "REQUEST" || f.Verdict != event.VerdictForwarded {
		t.Errorf("flow %+v", f.HTTP)
	}
}

// TestUnknownSlot: a connection the datapath did not redirect is reset.
func TestUnknownSlot(t *testing.T) {
	ev := newEnv(t, nil, false, Config{})
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0xde, 0xad)}, Timeout: 10 * time.Second}
	// The reset may come before connect returns or at the first read.
	if c, err := d.Dial("tcp4", ev.addr); err == nil {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprintf(c, "GET / HTTP/1.1\r\n\r\n")
		if n, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Fatalf("read %d bytes, %v; want a reset", n, err)
		}
	}
	if ev.p.Stats().UnknownSlot != 1 {
		t.Errorf("stats %+v", ev.p.Stats())
	}
}

// TestVisibility: without rules.http every request passes and is
// reported; what is not HTTP is passed through unchanged.
func TestVisibility(t *testing.T) {
	ev := newEnv(t, nil, true, Config{Headers: []string{"x-request-id"}, RedactQuery: true})
	c := ev.dial(0x010b)
	fmt.Fprintf(c, "PUT /v1/exhaust-port?secret=1 HTTP/1.1\r\nHost: deathstar\r\nX-Request-Id: r1\r\nContent-Length: 0\r\n\r\n")
	if code, _ := readResponse(t, bufio.NewReader(c), "PUT"); code != 500 {
		t.Fatalf("code %d", code)
	}
	f := ev.flow()
	// HTTP/2 with prior knowledge passes through: the server (HTTP/1
	// only) answers what it answers, which does not parse as frames
	// (counted), and nothing is reported.
	h2 := ev.dial(0x010c)
	fmt.Fprintf(h2, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	_ = h2.(*net.TCPConn).CloseWrite()
	if out := readAll(t, h2); !strings.Contains(out, "HTTP/1.1 400") {
		t.Errorf("h2c through visibility: %.80q, want the server's own answer", out)
	}
	if st := ev.p.Stats(); st.Passthrough != 0 || st.HTTP2 != 0 || st.HTTP2Parsed != 1 || st.HTTP2Errors != 1 {
		t.Errorf("stats %+v", st)
	}
	if f.Verdict != event.VerdictForwarded || f.HTTP.Code != 500 || f.HTTP.URL != "http://deathstar/v1/exhaust-port" ||
		fmt.Sprint(f.HTTP.Headers) != "[{X-Request-Id r1}]" || len(f.Policies) != 0 || f.HTTP.ResponseBytes != int64(len("Panic: deathstar exploded\n")) {
		t.Errorf("flow %+v", f.HTTP)
	}
}
