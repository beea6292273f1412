package rules

import (
	"context"
	"testing"

	"github.com/vigilsec/vigil/internal/kerneltest"
)

// BenchmarkRules evaluates recorded events through the whole default rule
// set, as the engine does after encoding: parse (with the process cache)
// and evaluate. "ordinary" is the events of ordinary activity on a host,
// "all" the behaviours the default rules detect and their benign
// counterparts (every event is one a rule looks at closely: the worst
// case); then each rule alone over the behaviours (the events of the types
// it consumes). Run on one core:
//
//	go test ./rules -run '^$' -bench Rules -cpu 1
func BenchmarkRules(b *testing.B) {
	lines := recorded(b)
	ctx := context.Background()
	cfg := DefaultConfig()
	all, _, err := Load(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B, set *Set, lines [][]byte) {
		o := NewOffline(set, nil)
		// Only the events a rule consumes reach the engine.
		var in [][]byte
		for _, l := range lines {
			_, typ, err := ParseInput(l)
			if err == nil && set.Wants(typ) {
				in = append(in, l)
			}
		}
		if len(in) == 0 {
			kerneltest.Skip(b, "no recorded event of the types this rule consumes")
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := o.Eval(ctx, in[i%len(in)]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	}
	b.Run("ordinary", func(b *testing.B) { run(b, all, ordinary(b)) })
	b.Run("all", func(b *testing.B) { run(b, all, lines) })
	srcs, err := defaultSources(false)
	if err != nil {
		b.Fatal(err)
	}
	var libs []*Rule
	for _, s := range srcs {
		if r, err := ParseRule(s.file, s.text); err == nil && r.lib {
			libs = append(libs, r)
		}
	}
	for _, r := range all.Rules() {
		b.Run(r.ID, func(b *testing.B) {
			one, err := Compile(ctx, append([]*Rule{r}, libs...))
			if err != nil {
				b.Fatal(err)
			}
			run(b, one, lines)
		})
	}
}
