package metrics

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegisterAndServe(t *testing.T) {
	reg := NewRegistry()
	cacheSize := 42
	policies := map[string]int{"enabled": 3, "error": 1}
	err := Register(reg,
		Func{Name: "vigil_process_cache_entries", Help: "Processes in the cache.", Type: prometheus.GaugeValue,
			Collect: func(emit func(float64, ...string)) { emit(float64(cacheSize)) }},
		Func{Name: "vigil_policies", Help: "Loaded policies by state.", Type: prometheus.GaugeValue, Labels: []string{"state"},
			Collect: func(emit func(float64, ...string)) {
				for state, n := range policies {
					emit(float64(n), state)
				}
			}},
		Func{Name: "vigil_bpf_run_seconds_total", Help: "Time spent in BPF programs.", Type: prometheus.CounterValue, Labels: []string{"program"},
			Collect: func(emit func(float64, ...string)) { emit(0.25, "process_exec") }},
	)
	if err != nil {
		t.Fatal(err)
	}
	cacheSize = 43 // read at scrape time
	rec := httptest.NewRecorder()
	Handler(reg).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		"vigil_process_cache_entries 43",
		`vigil_policies{state="enabled"} 3`,
		`vigil_policies{state="error"} 1`,
		`vigil_bpf_run_seconds_total{program="process_exec"} 0.25`,
		"vigil_process_resident_memory_bytes",
		"go_goroutines",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}

func TestRegisterErrors(t *testing.T) {
	collect := func(emit func(float64, ...string)) {}
	for _, tt := range []struct {
		f    Func
		want string
	}{
		{Func{Name: "process_cache_size", Help: "x", Type: prometheus.GaugeValue, Collect: collect}, `name "process_cache_size"`},
		{Func{Name: "vigil_x", Type: prometheus.GaugeValue, Collect: collect}, "vigil_x has no help text"},
		{Func{Name: "vigil_runs", Help: "x", Type: prometheus.CounterValue, Collect: collect}, "counter vigil_runs must end with _total"},
		{Func{Name: "vigil_x", Help: "x", Type: prometheus.GaugeValue}, "no Collect func"},
	} {
		err := Register(prometheus.NewRegistry(), tt.f)
		if err == nil || !errors.Is(err, ErrBadMetric) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Register(%s) = %v, want %q", tt.f.Name, err, tt.want)
		}
	}
	reg := prometheus.NewRegistry()
	f := Func{Name: "vigil_x", Help: "x", Type: prometheus.GaugeValue, Collect: collect}
	if err := Register(reg, f); err != nil {
		t.Fatal(err)
	}
	if err := Register(reg, f); err == nil || !strings.Contains(err.Error(), "metric vigil_x") {
		t.Errorf("duplicate registration: %v", err)
	}
	// A Collect that emits the wrong number of label values makes the
	// scrape report the error instead of panicking.
	bad := prometheus.NewRegistry()
	Register(bad, Func{Name: "vigil_y", Help: "y", Type: prometheus.GaugeValue, Labels: []string{"a"},
		Collect: func(emit func(float64, ...string)) { emit(1) }})
	if _, err := bad.Gather(); err == nil {
		t.Error("gather with a wrong label count succeeded")
	}
}
