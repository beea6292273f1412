package agent

import (
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigilsec/vigil/process"
)

// cacheCollector exports the process cache's counters.
type cacheCollector struct {
	cache                         *process.Cache
	size, hits, misses, evictions *prometheus.Desc
}

func newCacheCollector(c *process.Cache) prometheus.Collector {
	return &cacheCollector{
		cache:     c,
		size:      prometheus.NewDesc("vigil_process_cache_size", "Processes in the process cache (live and recently exited).", nil, nil),
		hits:      prometheus.NewDesc("vigil_process_cache_hits_total", "Process cache lookups that found the process.", nil, nil),
		misses:    prometheus.NewDesc("vigil_process_cache_misses_total", "Process cache lookups that did not find the process.", nil, nil),
		evictions: prometheus.NewDesc("vigil_process_cache_evictions_total", "Processes evicted from a full process cache.", nil, nil),
	}
}

func (c *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.size
	ch <- c.hits
	ch <- c.misses
	ch <- c.evictions
}

func (c *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.cache.Stats()
	ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(s.Size))
	ch <- prometheus.MustNewConstMetric(c.hits, prometheus.CounterValue, float64(s.Hits))
	ch <- prometheus.MustNewConstMetric(c.misses, prometheus.CounterValue, float64(s.Misses))
	ch <- prometheus.MustNewConstMetric(c.evictions, prometheus.CounterValue, float64(s.Evictions))
}

// startHTTP serves /metrics, /healthz and /readyz on the metrics address.
func (a *Agent) startHTTP() (*http.Server, error) {
	ln, err := net.Listen("tcp", a.cfg.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr %s: %w", a.cfg.MetricsAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !a.Ready() {
			http.Error(w, "not ready: sensors or initial policies are still loading", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	srv := &http.Server{Handler: mux}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.WithError(err).Error("metrics server stopped")
		}
	}()
	a.log.WithField("addr", ln.Addr().String()).Info("serving metrics and health")
	return srv, nil
}
