package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/apiauth"
	"github.com/vigilsec/vigil/hubble"
	"github.com/vigilsec/vigil/internal/browsertest"
)

// startUI serves a UI over store on loopback and returns its URL.
func startUI(t *testing.T, store *hubble.Store, auth *apiauth.Authenticator) string {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	srv, err := NewServer(store, auth, Options{Mode: "agent", NodeName: "node-a", Tick: 200 * time.Millisecond}, log)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); srv.Run(ctx) }()
	go func() { defer wg.Done(); Serve(ctx, lis, srv.Handler(), log) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return "http://" + lis.Addr().String() + "/"
}

type drawnMap struct {
	Nodes []struct {
		ID, Label, Parent string
	}
	Namespaces []string
	Edges      []struct {
		ID, Source, Target, Label, Verdict, Color string
	}
}

func drawn(t *testing.T, ctx context.Context) drawnMap {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify(window.vigil.map.drawn())`))
	if err != nil {
		t.Fatal(err)
	}
	var m drawnMap
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func (m drawnMap) edge(src, dst string) (label, verdict string, ok bool) {
	for _, e := range m.Edges {
		if e.Source == src && e.Target == dst {
			return e.Label, e.Verdict, true
		}
	}
	return "", "", false
}

// clickOn clicks with the mouse where the map draws element id.
func clickOn(t *testing.T, ctx context.Context, id string) {
	t.Helper()
	p, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]float64](fmt.Sprintf(`window.vigil.map.renderedCenter(%q)`, id)))
	if err != nil || p == nil {
		t.Fatalf("%s is not on the map: %v", id, err)
	}
	if err := chromedp.Do(ctx, chromedp.MouseClickXY(p["x"], p["y"])); err != nil {
		t.Fatal(err)
	}
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {innerText: ""}).innerText`, sel)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const pageState = `JSON.stringify({url: location.href, body: document.body.innerText.slice(0, 2000), map: window.vigil && window.vigil.map.drawn()})`

// setSelect chooses value in the select named name, as a person would.
func setSelect(t *testing.T, ctx context.Context, name, value string) {
	t.Helper()
	js := fmt.Sprintf(`(() => { const s = document.querySelector('select[name=%q]'); s.value = %q; s.dispatchEvent(new Event('change', {bubbles: true})); return s.value; })()`, name, value)
	if got, err := chromedp.Run(ctx, chromedp.Evaluate[string](js)); err != nil || got != value {
		t.Fatalf("select %s=%s: %q %v", name, value, got, err)
	}
}

// The Death Star in the browser: the map shows the three ships' workloads
// in their namespace, the TIE fighter's landings forwarded and the X-wing's
// dropped by rule1; clicking shows the edge's and the workload's details;
// filters change the map and stay in the URL; new flows arrive live; the
// flow table and the exports show the same; no request leaves the page's
// origin.
func TestBrowserDeathStar(t *testing.T) {
	store, conv := deathstarStore(t)
	base := startUI(t, store, nil)
	ctx := browsertest.New(t, 1400, 900)
	origin := strings.TrimSuffix(base, "/")

	var mu sync.Mutex
	var foreign []string
	err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			u := e.Request.URL
			if !strings.HasPrefix(u, origin) && !strings.HasPrefix(u, "data:") && !strings.HasPrefix(u, "blob:") {
				mu.Lock()
				foreign = append(foreign, u)
				mu.Unlock()
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(base)); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(t, ctx, "the map and its first layout",
		`!!(window.vigil && window.vigil.snapshots >= 1 && window.vigil.map.layoutsDone >= 1)`, pageState, 45*time.Second)

	m := drawn(t, ctx)
	if len(m.Namespaces) != 1 || m.Namespaces[0] != "default" {
		t.Errorf("namespaces drawn %v, want default", m.Namespaces)
	}
	for _, n := range []string{"deathstar", "tiefighter", "xwing"} {
		found := false
		for _, d := range m.Nodes {
			found = found || (d.Label == n && d.Parent == "ns:default")
		}
		if !found {
			t.Errorf("the map does not draw %s in namespace default: %+v", n, m.Nodes)
		}
	}
	if l, v, ok := m.edge("default/tiefighter", "default/deathstar"); !ok || v != "forwarded" || l != "TCP/80 · 2 forwarded" {
		t.Errorf("tiefighter -> deathstar drawn %q (%s), want \"TCP/80 · 2 forwarded\"", l, v)
	}
	if l, v, ok := m.edge("default/xwing", "default/deathstar"); !ok || v != "dropped" || l != "TCP/80 · 2 dropped by default/rule1" {
		t.Errorf("xwing -> deathstar drawn %q (%s), want its drops by default/rule1", l, v)
	}
	browsertest.Screenshot(t, ctx, "deathstar-map")

	// The X-wing's edge: its drops, the reason and the deciding policy.
	clickOn(t, ctx, "default/xwing>default/deathstar:TCP/80")
	browsertest.WaitFor(t, ctx, "the edge panel", `!!document.querySelector('aside.panel h2')`, pageState, 30*time.Second)
	panel := text(t, ctx, "aside.panel")
	for _, want := range []string{"default/xwing → default/deathstar", "TCP/80", "0 forwarded · 2 dropped", "POLICY_DENIED",
		"CiliumNetworkPolicy default/rule1", "/usr/bin/curl", "--password *****"} {
		if !strings.Contains(panel, want) {
			t.Errorf("edge panel lacks %q:\n%s", want, panel)
		}
	}
	if strings.Contains(panel, "hunter2") {
		t.Errorf("the edge panel shows a redacted secret:\n%s", panel)
	}
	browsertest.Screenshot(t, ctx, "deathstar-edge")

	// The Death Star's workload: labels, pods, the policy that selects it,
	// its process tree.
	clickOn(t, ctx, "default/deathstar")
	browsertest.WaitFor(t, ctx, "the workload panel", `(document.querySelector('aside.panel h2') || {}).innerText === 'default/deathstar'`, pageState, 30*time.Second)
	panel = text(t, ctx, "aside.panel")
	for _, want := range []string{"k8s:class=deathstar", "k8s:org=empire", deathstar.PodName + " on node-a",
		"Policies selecting it\nCiliumNetworkPolicy default/rule1", "/usr/local/bin/deathstar[1]", "Deployment"} {
		if !strings.Contains(panel, want) {
			t.Errorf("workload panel lacks %q:\n%s", want, panel)
		}
	}

	// Filters: only drops; the URL keeps the filter across a reload.
	setSelect(t, ctx, "verdict", "dropped")
	browsertest.WaitFor(t, ctx, "the dropped-only map", `window.vigil.map.drawn().edges.length === 1`, pageState, 30*time.Second)
	m = drawn(t, ctx)
	if l, _, ok := m.edge("default/xwing", "default/deathstar"); !ok || l != "TCP/80 · 2 dropped by default/rule1" {
		t.Errorf("dropped-only map: %+v", m.Edges)
	}
	loc, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.search`))
	if !strings.Contains(loc, "verdict=dropped") {
		t.Errorf("URL %q does not keep the verdict filter", loc)
	}
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(t, ctx, "the reloaded map", `!!(window.vigil && window.vigil.snapshots >= 1)`, pageState, 45*time.Second)
	if n := len(drawn(t, ctx).Edges); n != 1 {
		t.Errorf("after reload the map draws %d edges, want the filtered 1", n)
	}
	if v := text(t, ctx, "select[name=verdict] option:checked"); v != "dropped" {
		t.Errorf("verdict select shows %q after reload", v)
	}
	setSelect(t, ctx, "verdict", "")
	if err := chromedp.Do(ctx, chromedp.SendKeys(`input[name=label]`, "org=alliance\r")); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(t, ctx, "the org=alliance map", `window.vigil.map.drawn().edges.length === 1 && location.search.includes('label=org')`, pageState, 30*time.Second)
	if _, _, ok := drawn(t, ctx).edge("default/xwing", "default/deathstar"); !ok {
		t.Errorf("label filter org=alliance does not keep the xwing's edge")
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(base)); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(t, ctx, "the unfiltered map", `!!(window.vigil && window.vigil.snapshots >= 1 && window.vigil.map.drawn().edges.length === 2)`, pageState, 45*time.Second)

	// Live: a new ship lands; its workload and edge appear without a reload.
	snapshots, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`window.vigil.snapshots`))
	shuttle := endpoint("empire", "shuttle", "class=shuttle", "org=empire")
	ips["shuttle"] = "10.0.4.13"
	for _, ev := range landingFlows(shuttle, time.Now(), false) {
		store.Put(conv.Convert(ev))
	}
	browsertest.WaitFor(t, ctx, "the shuttle's live edge",
		`window.vigil.map.drawn().edges.some(e => e.source === 'empire/shuttle' && e.target === 'default/deathstar')`, pageState, 30*time.Second)
	if m := drawn(t, ctx); len(m.Namespaces) != 2 {
		t.Errorf("namespaces after the shuttle: %v, want default and empire", m.Namespaces)
	}
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`window.vigil.snapshots`)); n != snapshots {
		t.Errorf("the page reloaded the map (%d snapshots, want %d): updates are not live", n, snapshots)
	}
	browsertest.Screenshot(t, ctx, "deathstar-live")

	// The flow table with the same filters.
	if err := chromedp.Do(ctx, chromedp.Click(`nav button:nth-child(2)`)); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(t, ctx, "the flow table", `!!document.querySelector('table.flows tbody tr')`, pageState, 30*time.Second)
	table := text(t, ctx, "table.flows")
	for _, want := range []string{"default/xwing-6d5f9c7b8-x2x7q", "dropped", "POLICY_DENIED · denied by CiliumNetworkPolicy default/rule1",
		"empire/shuttle-6d5f9c7b8-x2x7q", "/usr/bin/curl[8]"} {
		if !strings.Contains(table, want) {
			t.Errorf("flow table lacks %q:\n%s", want, table)
		}
	}
	browsertest.Screenshot(t, ctx, "deathstar-flows")

	// Exports: the PNG of the map, the CSV of the flows.
	size, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.vigil.map.png().size`))
	if err != nil || size < 1000 {
		t.Errorf("PNG export is %d bytes (%v)", size, err)
	}
	resp, err := http.Get(base + "api/flows?format=csv&verdict=dropped")
	if err != nil {
		t.Fatal(err)
	}
	csv, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	lines := strings.Split(strings.TrimSpace(string(csv)), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "time,node,source,") || !strings.Contains(lines[1], "default/xwing") ||
		!strings.Contains(lines[1], "denied by CiliumNetworkPolicy default/rule1") {
		t.Errorf("CSV of the drops:\n%s", csv)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(foreign) > 0 {
		t.Errorf("the page requested other origins: %v", foreign)
	}
}

// With a token, the page asks for it; the API refuses requests without it;
// after signing in the map appears.
func TestBrowserSignIn(t *testing.T) {
	store, _ := deathstarStore(t)
	dir := t.TempDir()
	tok := dir + "/token"
	if err := writeFile(tok, "correct-horse-battery"); err != nil {
		t.Fatal(err)
	}
	auth, err := apiauth.New(apiauth.Config{TokenFile: tok})
	if err != nil {
		t.Fatal(err)
	}
	base := startUI(t, store, auth)
	for _, p := range []string{"api/map", "api/stream", "api/flows?format=csv", "api/status"} {
		resp, err := http.Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %d, want 401", p, resp.StatusCode)
		}
	}
	resp, err := http.PostForm(base+"api/map", url.Values{})
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST api/map: %d, want 405 (read-only)", resp.StatusCode)
		}
	}

	ctx := browsertest.New(t, 1200, 800)
	if err := chromedp.Do(ctx, chromedp.Navigate(base)); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(t, ctx, "the sign-in form", `!!document.querySelector('form.login')`, pageState, 30*time.Second)
	if err := chromedp.Do(ctx, chromedp.SendKeys(`input[name=token]`, "wrong\r")); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(t, ctx, "the refusal", `(document.querySelector('form.login .error') || {}).innerText === 'wrong token'`, pageState, 30*time.Second)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('input[name=token]').value = ''`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys(`input[name=token]`, "correct-horse-battery\r")); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(t, ctx, "the map after signing in", `!!(window.vigil && window.vigil.snapshots >= 1 && window.vigil.map.drawn().edges.length === 2)`, pageState, 45*time.Second)
}
