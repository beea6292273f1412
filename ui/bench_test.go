package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	flowpb "github.com/cilium/cilium/api/v1/flow"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/exporter"
	"github.com/vigilsec/vigil/hubble"
	"github.com/vigilsec/vigil/internal/browsertest"
)

// clusterFlows are flow events among workloads workloads in 10
// namespaces, edges of them (each workload talks to edges/workloads
// others, four in five of them in its own namespace), each with a process
// of its own.
func clusterFlows(workloads, edges int) []*event.Event {
	eps := make([]event.Endpoint, workloads)
	procs := make([]*event.Process, workloads)
	for i := range eps {
		ns, name := fmt.Sprintf("ns-%d", i%10), fmt.Sprintf("svc-%d", i)
		eps[i] = event.Endpoint{Namespace: ns, PodName: name + "-7d9f8c6b5-abcde", Identity: uint32(10000 + i),
			Labels: []string{"app=" + name, "tier=" + []string{"web", "api", "db"}[i%3]}, Workloads: []event.Workload{{Name: name, Kind: "Deployment"}}}
		procs[i] = &event.Process{ExecID: fmt.Sprintf("exec-%d", i), PID: uint32(100 + i), Binary: "/usr/bin/" + name,
			Arguments: "--listen :8080", StartTime: time.Now().Add(-time.Hour), Pod: &event.Pod{Namespace: ns, Name: eps[i].PodName}}
	}
	out := make([]*event.Event, 0, edges)
	for i := 0; len(out) < edges; i++ {
		src := i % workloads
		k := i / workloads // the k-th peer of src
		var dst int
		if k%5 == 4 {
			dst = (src + 1 + 7*k) % workloads // another namespace
		} else {
			dst = (src + 10*(1+k)) % workloads // the same namespace (i%10)
		}
		if dst == src {
			dst = (dst + 10) % workloads
		}
		v := event.VerdictForwarded
		f := &event.Flow{Phase: event.FlowStart, Verdict: v, Protocol: event.ProtoTCP, SourcePort: uint16(30000 + i%30000),
			DestinationPort: uint16(8080 + i%3), TCPFlags: event.TCPSYN, Direction: event.DirectionEgress,
			Source: netip.AddrFrom4([4]byte{10, 1, byte(src >> 8), byte(src)}), Destination: netip.AddrFrom4([4]byte{10, 1, byte(dst >> 8), byte(dst)}),
			SourceEndpoint: eps[src], DestEndpoint: eps[dst]}
		if i%10 == 0 {
			f.Verdict, f.DropReasonDesc = event.VerdictDropped, "POLICY_DENIED"
			f.EgressDeniedBy = []string{"NetworkPolicy " + eps[src].Namespace + "/default-deny"}
		}
		out = append(out, &event.Event{Type: event.TypeFlow, Time: time.Now(), Flow: f, Process: procs[src]})
	}
	return out
}

func cpuTime() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func freeLoopback(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// feed exports rate flow events a second for d, in 10ms batches, and
// returns the CPU time this process used meanwhile.
func feed(exp *exporter.Exporter, evs []*event.Event, rate int, d time.Duration) time.Duration {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	per := rate / 100
	start, cpu0 := time.Now(), cpuTime()
	i := 0
	for time.Since(start) < d {
		<-t.C
		now := time.Now()
		for j := 0; j < per; j++ {
			ev := evs[i%len(evs)]
			ev.Time = now
			exp.Export(ev)
			i++
		}
	}
	return cpuTime() - cpu0
}

// status reads the UI's /api/status.
func status(b *testing.B, addr string) statusView {
	resp, err := http.Get("http://" + addr + "/api/status")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var st statusView
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		b.Fatal(err)
	}
	return st
}

// BenchmarkUIFollow measures what the UI costs the agent's process while a
// browser has the map open and follows it at 10,000 flows a second over
// 500 workloads and 5,000 edges: the CPU of the exporter alone, then with
// the flow store, the map and the page's live stream, both fed the same
// flows. cpu-%-extra is the difference in percent of one CPU. The browser
// is a plain headless Chromium (no DevTools client in this process), so
// its work is its own process's, as on a person's machine.
func BenchmarkUIFollow(b *testing.B) {
	const rate = 10000
	d := 10 * time.Second
	chromium := browsertest.Path(b)
	evs := clusterFlows(500, 5000)
	log := logrus.New()
	log.SetOutput(io.Discard)
	cfg := exporter.DefaultConfig()
	cfg.Stdout = false
	cfg.File = b.TempDir() + "/events.json" // the same sink in both runs
	exp, err := exporter.New(cfg, log, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go exp.Run(ctx)
	var exporterPct, withPct, extraPct, updates []float64
	b.ResetTimer()
	for b.Loop() {
		base := feed(exp, evs, rate, d)
		ucfg := DefaultConfig()
		ucfg.Addr, ucfg.HubbleAddr = freeLoopback(b), ""
		stop, err := Start(ctx, ucfg, exp, log)
		if err != nil {
			b.Fatal(err)
		}
		browser := browsertest.Open(b, chromium, "http://"+ucfg.Addr+"/?window=1m")
		// Warm up: the map fills and the page starts following.
		for i := 0; ; i++ {
			feed(exp, evs, rate, time.Second)
			st := status(b, ucfg.Addr)
			if st.Streams == 1 && st.Updates > 2 {
				break
			}
			if i == 60 {
				b.Fatalf("the page does not follow the map: %+v", st)
			}
		}
		u0 := status(b, ucfg.Addr).Updates
		with := feed(exp, evs, rate, d)
		u1 := status(b, ucfg.Addr).Updates
		browser()
		stop()
		exporterPct = append(exporterPct, 100*base.Seconds()/d.Seconds())
		withPct = append(withPct, 100*with.Seconds()/d.Seconds())
		extraPct = append(extraPct, 100*(with-base).Seconds()/d.Seconds())
		updates = append(updates, float64(u1-u0)/d.Seconds())
	}
	b.ReportMetric(median(exporterPct), "cpu-%-exporter")
	b.ReportMetric(median(withPct), "cpu-%-with-ui")
	b.ReportMetric(median(extraPct), "cpu-%-extra")
	b.ReportMetric(median(updates), "updates/s")
}

// BenchmarkFirstPaint measures how long headless Chromium takes from
// navigation to the first drawing of a map of 500 workloads and 5,000
// edges (first-paint-ms), and to the first fCoSE layout from the worker
// (layout-ms).
func BenchmarkFirstPaint(b *testing.B) {
	store, err := hubble.NewEventStore(1<<14, hubble.NewConverter("node-a", nil))
	if err != nil {
		b.Fatal(err)
	}
	for _, ev := range clusterFlows(500, 5000) {
		store.PutEvent(ev)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	srv, err := NewServer(store, nil, Options{Mode: "agent", NodeName: "node-a"}, log)
	if err != nil {
		b.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Run(ctx)
	go Serve(ctx, lis, srv.Handler(), log)
	url := "http://" + lis.Addr().String() + "/?window=all"
	// The map holds every flow before the page asks for it.
	srv.catchUp()
	if n := srv.graph.view(&viewFilter{window: "all"}, time.Now(), 0).Stats.Edges; n != 5000 {
		b.Fatalf("the map holds %d edges, want 5000", n)
	}
	bctx := browsertest.New(b, 1400, 900)
	var paint, layout []float64
	b.ResetTimer()
	for b.Loop() {
		if err := chromedp.Do(bctx, chromedp.Navigate("about:blank"), chromedp.Navigate(url)); err != nil {
			b.Fatal(err)
		}
		browsertest.WaitFor(b, bctx, "the first paint", `!!(window.vigil && window.vigil.map.firstPaint !== null)`, "", time.Minute)
		fp, _ := chromedp.Run(bctx, chromedp.Evaluate[float64](`window.vigil.map.firstPaint`))
		tm, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`JSON.stringify(window.vigil.map.timings)`))
		b.Logf("first paint %.0f ms: %s", fp, tm)
		n, _ := chromedp.Run(bctx, chromedp.Evaluate[int](`window.vigil.map.drawn().edges.length`))
		if n != 5000 {
			b.Fatalf("the map draws %d edges, want 5000", n)
		}
		browsertest.WaitFor(b, bctx, "the layout", `window.vigil.map.firstLayout !== undefined`, "", 2*time.Minute)
		fl, _ := chromedp.Run(bctx, chromedp.Evaluate[float64](`window.vigil.map.firstLayout`))
		paint, layout = append(paint, fp), append(layout, fl)
	}
	b.ReportMetric(median(paint), "first-paint-ms")
	b.ReportMetric(median(layout), "layout-ms")
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s[len(s)/2]
}

// BenchmarkIngest is the UI's work per flow in the agent while a page
// follows the map: taking the exporter's copy of the event, storing it, and
// folding it into the map (no Hubble flow is built).
func BenchmarkIngest(b *testing.B) {
	evs := clusterFlows(500, 5000)
	store, err := hubble.NewEventStore(8192, hubble.NewConverter("node-a", nil))
	if err != nil {
		b.Fatal(err)
	}
	g := newGraph()
	var recs []hubble.Record
	var seq uint64
	b.ReportAllocs()
	cpu0 := cpuTime()
	i := 0
	for b.Loop() {
		store.PutEvent(evs[i%len(evs)].Clone()) // as the exporter's subscription hands it over
		recs, seq, _ = store.ReadRecords(recs[:0], seq, 0)
		g.addRecord(recs[0])
		i++
	}
	// CPU time, not wall time: the machines we measure on are shared.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// BenchmarkIngestNoClient is the agent's work per flow when no page and no
// Observer client is connected: taking the exporter's copy and appending
// it to the ring.
func BenchmarkIngestNoClient(b *testing.B) {
	evs := clusterFlows(500, 5000)
	store, err := hubble.NewEventStore(8192, hubble.NewConverter("node-a", nil))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu0 := cpuTime()
	i := 0
	for b.Loop() {
		store.PutEvent(evs[i%len(evs)].Clone())
		i++
	}
	// CPU time, not wall time: the machines we measure on are shared.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// BenchmarkObserverRead is what an Observer client's read costs per flow
// that nobody read before: building its Hubble flow.
func BenchmarkObserverRead(b *testing.B) {
	evs := clusterFlows(500, 5000)
	store, err := hubble.NewEventStore(8192, hubble.NewConverter("node-a", nil))
	if err != nil {
		b.Fatal(err)
	}
	var flows []*flowpb.Flow
	var seq uint64
	b.ReportAllocs()
	cpu0 := cpuTime()
	i := 0
	for b.Loop() {
		store.PutEvent(evs[i%len(evs)].Clone())
		flows, seq, _ = store.Read(flows[:0], seq, 0)
		i++
	}
	// CPU time, not wall time: the machines we measure on are shared.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}
