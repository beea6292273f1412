package rules

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/internal/kerneltest"
)

// discard is a sink that keeps nothing.
type discard struct{}

func (discard) Export(*event.Event)       {}
func (discard) ReportLost(string, uint64) {}

// BenchmarkRules runs recorded events through the rules engine as the
// agent does: Submit (the rules' conditions on the event in place, a copy
// queued when a rule may alert), then the evaluation of what was queued
// (Go plans, exceptions, alert events). "ordinary" is the events of
// ordinary activity on a host, "all" the behaviours the default rules
// detect and their benign counterparts (every event is one a rule looks
// at closely: the worst case); then each rule alone over the behaviours
// (the events of the types it consumes). Run on one core:
//
//	go test ./rules -run '^$' -bench Rules -cpu 1
func BenchmarkRules(b *testing.B) {
	ctx := context.Background()
	run := func(b *testing.B, e *Engine, lines [][]byte) {
		evs, nodes := recordedEvents(b, lines)
		set := e.cur.Load().set
		var in []*event.Event
		for _, ev := range evs {
			if set.Wants(ev.Type) {
				in = append(in, ev)
			}
		}
		if len(in) == 0 {
			kerneltest.Skip(b, "no recorded event of the types this rule consumes")
		}
		e.cfg.NodeName = nodes[0]
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			e.Submit(in[i%len(in)])
			e.drain(ctx)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	}
	b.Run("ordinary", func(b *testing.B) { run(b, defaultEngine(b, discard{}), ordinary(b)) })
	b.Run("all", func(b *testing.B) { run(b, defaultEngine(b, discard{}), recorded(b)) })
	for _, r := range loadDefaults(b).Rules() {
		b.Run(r.ID, func(b *testing.B) {
			e := defaultEngine(b, discard{})
			libs := libRules(b)
			one, err := Compile(ctx, append(libs, r))
			if err != nil {
				b.Fatal(err)
			}
			e.cur.Load().set = one
			run(b, e, recorded(b))
		})
	}
}

// BenchmarkSubmitRuledOut is Submit alone for the ordinary events no
// rule alerts on (nine in ten of them): what most events cost.
func BenchmarkSubmitRuledOut(b *testing.B) {
	e := defaultEngine(b, discard{})
	evs, _ := recordedEvents(b, ordinary(b))
	var quiet []*event.Event
	for _, ev := range evs {
		if !e.cur.Load().set.MayAlert(ev, e.cfg.NodeName) {
			quiet = append(quiet, ev)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.Submit(quiet[i%len(quiet)])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkEngineMemory reports what a rules engine with the default rules
// holds: the heap it adds once loaded (after a collection), and the
// resident size of the process (the test binary) with it.
func BenchmarkEngineMemory(b *testing.B) {
	var before, after runtime.MemStats
	var e *Engine
	for i := 0; i < b.N; i++ {
		runtime.GC()
		runtime.ReadMemStats(&before)
		e = defaultEngine(b, discard{})
		runtime.GC()
		runtime.ReadMemStats(&after)
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(before.HeapAlloc)/(1<<20), "heap-before-MiB")
	b.ReportMetric(float64(rssBytes(b))/(1<<20), "rss-MiB")
	runtime.KeepAlive(e)
}

func rssBytes(tb testing.TB) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb << 10
		}
	}
	tb.Fatal("no VmRSS in /proc/self/status")
	return 0
}
