package ui

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/exporter"
	"github.com/vigilsec/vigil/hubble"
)

// get answers one API request of h.
func get(t *testing.T, h http.Handler, path string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// The agent's map is folded from Vigil's events, the relay's from Hubble
// flows: both show the same map, flows, exports and panels for the same
// flows (labels in Cilium's form, policies, drop reasons, processes with
// their arguments redacted).
func TestEventsAndHubbleFlowsShowAlike(t *testing.T) {
	conv := hubble.NewConverter("node-a", redactPassword)
	evStore, err := hubble.NewEventStore(1024, conv)
	if err != nil {
		t.Fatal(err)
	}
	flStore, _ := deathstarStore(t)
	at := time.Now().Add(-time.Minute)
	for i := 0; i < 2; i++ {
		for _, ev := range append(landingFlows(tiefighter, at, false), landingFlows(xwing, at.Add(time.Second), true)...) {
			evStore.PutEvent(ev)
		}
		at = at.Add(10 * time.Second)
	}
	// The fixtures' times differ by the moment each store was filled: pin
	// the clock to compare windows, and compare all time.
	now := time.Now().Add(time.Minute)
	servers := map[string]http.Handler{}
	for name, store := range map[string]*hubble.Store{"events": evStore, "flows": flStore} {
		srv, err := NewServer(store, nil, Options{Mode: "agent", NodeName: "node-a"}, logrus.New())
		if err != nil {
			t.Fatal(err)
		}
		srv.now = func() time.Time { return now }
		servers[name] = srv.Handler()
	}
	edge := "default/tiefighter>default/deathstar:TCP/80"
	drop := "default/xwing>default/deathstar:TCP/80"
	for _, path := range []string{
		"/api/map?window=all",
		"/api/map?window=all&verdict=dropped",
		"/api/map?window=all&label=org%3Dalliance",
		"/api/flows?window=all",
		"/api/flows?window=all&format=csv",
		"/api/flows?window=all&ns=default&verdict=forwarded",
		"/api/edge?window=all&id=" + url.QueryEscape(edge),
		"/api/edge?window=all&id=" + url.QueryEscape(drop),
		"/api/workload?window=all&id=default%2Ftiefighter",
		"/api/workload?window=all&id=default%2Fdeathstar",
	} {
		want, got := get(t, servers["flows"], path), get(t, servers["events"], path)
		// Flow times differ (the stores were filled moments apart).
		if d := cmp.Diff(stripTimes(t, want), stripTimes(t, got)); d != "" {
			t.Errorf("%s: (-from Hubble flows +from events):\n%s", path, d)
		}
	}
	var m mapView
	if err := json.Unmarshal([]byte(get(t, servers["events"], "/api/map?window=all")), &m); err != nil {
		t.Fatal(err)
	}
	var edges []string
	for _, e := range m.Edges {
		edges = append(edges, fmt.Sprintf("%s %s %v %v", e.ID, e.Verdict, e.Policies, e.Processes))
	}
	wantEdges := []string{
		edge + " forwarded [{CiliumNetworkPolicy default/rule1 forwarded}] [/usr/bin/curl /usr/local/bin/deathstar]",
		drop + " dropped [{CiliumNetworkPolicy default/rule1 dropped}] [/usr/bin/curl]",
	}
	if d := cmp.Diff(wantEdges, edges); d != "" {
		t.Errorf("the map from events (-want +got):\n%s", d)
	}
	if fl := get(t, servers["events"], "/api/flows?window=all"); strings.Contains(fl, "hunter2") || !strings.Contains(fl, "--password *****") {
		t.Errorf("flows from events do not redact the password:\n%s", fl)
	}
}

// stripTimes drops every time from a JSON or CSV answer.
func stripTimes(t *testing.T, s string) string {
	var v any
	if json.Unmarshal([]byte(s), &v) != nil {
		var out []string
		for _, line := range strings.Split(s, "\n") {
			if _, rest, ok := strings.Cut(line, ","); ok {
				out = append(out, rest)
			}
		}
		return strings.Join(out, "\n")
	}
	var strip func(any) any
	strip = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if k == "time" || k == "last" || k == "now" {
					delete(x, k)
				} else {
					x[k] = strip(e)
				}
			}
		case []any:
			for i := range x {
				x[i] = strip(x[i])
			}
		}
		return v
	}
	b, err := json.MarshalIndent(strip(v), "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// With no page open the agent only keeps the flows; a page opened later
// (its first map and its live stream's first snapshot) shows every flow
// that arrived before it.
func TestPageOpenedAfterFlowsShowsThem(t *testing.T) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	cfg := exporter.DefaultConfig()
	cfg.Stdout = false
	cfg.File = t.TempDir() + "/events.json"
	exp, err := exporter.New(cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go exp.Run(ctx)
	ucfg := DefaultConfig()
	ucfg.Addr, ucfg.HubbleAddr = freeAddr(t), ""
	stop, err := Start(ctx, ucfg, exp, log)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	at := time.Now().Add(-time.Minute)
	evs := append(landingFlows(tiefighter, at, false), landingFlows(xwing, at.Add(time.Second), true)...)
	for _, ev := range evs {
		exp.Export(ev)
	}
	base := "http://" + ucfg.Addr
	// The flows reach the store through the exporter's subscription.
	for {
		var st statusView
		if err := json.Unmarshal([]byte(httpGet(t, base+"/api/status")), &st); err != nil {
			t.Fatal(err)
		}
		if st.Seen == uint64(len(evs)) {
			if st.Streams != 0 {
				t.Fatalf("status %+v: a stream is open before any page", st)
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	var m mapView
	if err := json.Unmarshal([]byte(httpGet(t, base+"/api/map?window=15m")), &m); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range m.Edges {
		got = append(got, e.ID+" "+e.Verdict)
	}
	want := []string{"default/tiefighter>default/deathstar:TCP/80 forwarded", "default/xwing>default/deathstar:TCP/80 dropped"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("map edges (-want +got):\n%s", d)
	}

	resp, err := http.Get(base + "/api/stream?window=15m")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	var data string
	for data == "" {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		if d, ok := strings.CutPrefix(strings.TrimSpace(line), "data: "); ok {
			data = d
		}
	}
	var first mapView
	if err := json.Unmarshal([]byte(data), &first); err != nil {
		t.Fatal(err)
	}
	if len(first.Edges) != 2 || first.Stats.Flows != uint64(len(evs)) || first.Stats.Missed != 0 {
		t.Errorf("the stream's first map: %d edges, %d flows, %d missed; want 2 edges of %d flows, none missed",
			len(first.Edges), first.Stats.Flows, first.Stats.Missed, len(evs))
	}
}

func freeAddr(t *testing.T) string {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.Listener.Addr().String()
	srv.Close()
	return addr
}

func httpGet(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s %v", u, resp.StatusCode, b, err)
	}
	return string(b)
}

// Flows the ring overwrote while nobody looked are not on the map, and the
// status says how many; they are not counted as missed by a page.
func TestUnwatchedFlowsAreCounted(t *testing.T) {
	store, err := hubble.NewEventStore(16, hubble.NewConverter("node-a", nil))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Minute)
	for i := 0; i < 20; i++ {
		for _, ev := range landingFlows(tiefighter, at.Add(time.Duration(i)*time.Second), false) {
			store.PutEvent(ev)
		}
	}
	srv, err := NewServer(store, nil, Options{Mode: "agent", NodeName: "node-a"}, logrus.New())
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	var m mapView
	if err := json.Unmarshal([]byte(get(t, h, "/api/map?window=15m")), &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Edges) != 1 || m.Edges[0].Forwarded != 8 || m.Stats.Flows != 16 || m.Stats.Missed != 0 {
		t.Errorf("map %+v: want one edge of the 16 flows the ring holds (8 connections, seen at both ends), none missed", m)
	}
	var st statusView
	if err := json.Unmarshal([]byte(get(t, h, "/api/status")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Seen != 40 || st.Unwatched != 24 || st.Missed != 0 {
		t.Errorf("status %+v: want 40 seen, 24 unwatched, none missed", st)
	}
}

// A folded report stands for Count connections: the map counts them all,
// from the agent's own events and from the Hubble flows a relay reads.
func TestFoldedFlowsCountInTheMap(t *testing.T) {
	conv := hubble.NewConverter("node-a", nil)
	store, err := hubble.NewEventStore(16, conv)
	if err != nil {
		t.Fatal(err)
	}
	relay := newGraph()
	at := time.Now().Add(-time.Minute)
	for i, n := range []uint64{0, 6, 4} { // the first flow, then two reports of its repeats
		f := &event.Flow{Phase: event.FlowStart, Verdict: event.VerdictForwarded, Protocol: event.ProtoTCP,
			Source: netip.MustParseAddr(ips["tiefighter"]), Destination: netip.MustParseAddr(ips["deathstar"]),
			SourcePort: 41000, DestinationPort: 80, SourceEndpoint: tiefighter, DestEndpoint: deathstar,
			Direction: event.DirectionEgress, Count: n}
		ev := &event.Event{Type: event.TypeFlow, Time: at.Add(time.Duration(i) * time.Second), Flow: f, Process: landClient}
		store.PutEvent(ev)
		relay.add(conv.Convert(ev))
	}
	srv, err := NewServer(store, nil, Options{Mode: "agent", NodeName: "node-a"}, logrus.New())
	if err != nil {
		t.Fatal(err)
	}
	var m mapView
	if err := json.Unmarshal([]byte(get(t, srv.Handler(), "/api/map?window=15m")), &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Edges) != 1 || m.Edges[0].Forwarded != 11 {
		t.Errorf("the agent's map %+v: want one edge of 11 connections", m.Edges)
	}
	v := relay.view(&viewFilter{window: "all"}, time.Now(), 0)
	if len(v.Edges) != 1 || v.Edges[0].Forwarded != 11 {
		t.Errorf("the map of relayed flows %+v: want one edge of 11 connections", v.Edges)
	}
}
