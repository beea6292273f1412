package harness

import (
	"math"
	"slices"
	"sort"
)

// Summary describes a sample: its median and spread. Quartiles are
// interpolated between order statistics (type 7, as most tools do).
type Summary struct {
	N               int
	Min, Q1, Median float64
	Q3, Max         float64
}

// Summarize returns the summary of xs (NaN fields when xs is empty).
func Summarize(xs []float64) Summary {
	if len(xs) == 0 {
		nan := math.NaN()
		return Summary{Min: nan, Q1: nan, Median: nan, Q3: nan, Max: nan}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return Summary{N: len(s), Min: s[0], Q1: quantile(s, 0.25), Median: quantile(s, 0.5), Q3: quantile(s, 0.75), Max: s[len(s)-1]}
}

func quantile(sorted []float64, q float64) float64 {
	h := q * float64(len(sorted)-1)
	lo := math.Floor(h)
	i := int(lo)
	if i+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	return sorted[i] + (h-lo)*(sorted[i+1]-sorted[i])
}

// RelSpread is (max-min)/median: how much the sample varied, relative to its
// middle.
func (s Summary) RelSpread() float64 {
	if s.N == 0 || s.Median == 0 {
		return math.NaN()
	}
	return (s.Max - s.Min) / s.Median
}

// Ratios pairs with[i] with base[i] (the same round) and returns
// with/base, leaving out pairs that lack either side.
func Ratios(with, base []float64) []float64 {
	var out []float64
	for i := range min(len(with), len(base)) {
		if base[i] > 0 && with[i] > 0 && !math.IsNaN(with[i]) && !math.IsNaN(base[i]) {
			out = append(out, with[i]/base[i])
		}
	}
	return out
}

func medianInt(xs []int64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	f := make([]float64, len(s))
	for i, v := range s {
		f[i] = float64(v)
	}
	return quantile(f, 0.5)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
