package metrics

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Prefix starts every Vigil metric name.
const Prefix = "vigil_"

// NewRegistry returns a registry holding the Go runtime collector and the
// process collector (vigil_process_cpu_seconds_total,
// vigil_process_resident_memory_bytes, vigil_process_open_fds, ...).
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: strings.TrimSuffix(Prefix, "_")}),
	)
	return reg
}

// Handler serves g in the Prometheus exposition format.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Func is a metric read at scrape time.
type Func struct {
	// Name starts with "vigil_"; counters end with "_total".
	Name string
	Help string
	// Type is prometheus.GaugeValue or prometheus.CounterValue.
	Type   prometheus.ValueType
	Labels []string
	// Collect reports the current values: one call of emit per label set,
	// with as many label values as Labels.
	Collect func(emit func(value float64, labelValues ...string))
}

var nameRE = regexp.MustCompile(`^vigil_[a-z0-9_]+$`)

// ErrBadMetric is wrapped by errors about a Func's definition.
var ErrBadMetric = errors.New("bad metric")

// Register checks and registers fs on reg.
func Register(reg prometheus.Registerer, fs ...Func) error {
	for _, f := range fs {
		c, err := newFuncCollector(f)
		if err != nil {
			return err
		}
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("metric %s: %w", f.Name, err)
		}
	}
	return nil
}

type funcCollector struct {
	f    Func
	desc *prometheus.Desc
}

func newFuncCollector(f Func) (*funcCollector, error) {
	switch {
	case !nameRE.MatchString(f.Name):
		return nil, fmt.Errorf("%w: name %q: want %s followed by lower-case letters, digits and _", ErrBadMetric, f.Name, Prefix)
	case f.Help == "":
		return nil, fmt.Errorf("%w: %s has no help text", ErrBadMetric, f.Name)
	case f.Collect == nil:
		return nil, fmt.Errorf("%w: %s has no Collect func", ErrBadMetric, f.Name)
	case f.Type == prometheus.CounterValue && !strings.HasSuffix(f.Name, "_total"):
		return nil, fmt.Errorf("%w: counter %s must end with _total", ErrBadMetric, f.Name)
	case f.Type != prometheus.CounterValue && f.Type != prometheus.GaugeValue:
		return nil, fmt.Errorf("%w: %s: type must be prometheus.GaugeValue or CounterValue", ErrBadMetric, f.Name)
	}
	return &funcCollector{f: f, desc: prometheus.NewDesc(f.Name, f.Help, f.Labels, nil)}, nil
}

func (c *funcCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *funcCollector) Collect(ch chan<- prometheus.Metric) {
	c.f.Collect(func(v float64, labelValues ...string) {
		m, err := prometheus.NewConstMetric(c.desc, c.f.Type, v, labelValues...)
		if err != nil {
			m = prometheus.NewInvalidMetric(c.desc, err)
		}
		ch <- m
	})
}
