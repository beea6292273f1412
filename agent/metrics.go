package agent

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigilsec/vigil/flows"
	"github.com/vigilsec/vigil/process"
)

// cacheCollector exports the process cache's counters.
type cacheCollector struct {
	cache                                   *process.Cache
	size, capacity, hits, misses, evictions *prometheus.Desc
}

func newCacheCollector(c *process.Cache) prometheus.Collector {
	return &cacheCollector{
		cache:     c,
		size:      prometheus.NewDesc("vigil_process_cache_size", "Processes in the process cache (live and recently exited).", nil, nil),
		capacity:  prometheus.NewDesc("vigil_process_cache_capacity", "Most processes the process cache keeps (--process-cache-size, by default derived from the node's memory).", nil, nil),
		hits:      prometheus.NewDesc("vigil_process_cache_hits_total", "Process cache lookups that found the process.", nil, nil),
		misses:    prometheus.NewDesc("vigil_process_cache_misses_total", "Process cache lookups that did not find the process.", nil, nil),
		evictions: prometheus.NewDesc("vigil_process_cache_evictions_total", "Processes evicted from a full process cache.", nil, nil),
	}
}

func (c *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.size
	ch <- c.capacity
	ch <- c.hits
	ch <- c.misses
	ch <- c.evictions
}

func (c *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.cache.Stats()
	ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(s.Size))
	ch <- prometheus.MustNewConstMetric(c.capacity, prometheus.GaugeValue, float64(s.Capacity))
	ch <- prometheus.MustNewConstMetric(c.hits, prometheus.CounterValue, float64(s.Hits))
	ch <- prometheus.MustNewConstMetric(c.misses, prometheus.CounterValue, float64(s.Misses))
	ch <- prometheus.MustNewConstMetric(c.evictions, prometheus.CounterValue, float64(s.Evictions))
}

// startHTTP serves /metrics, /healthz and /readyz on the metrics address.
func (a *Agent) startHTTP(ln net.Listener) (*http.Server, error) {
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

// listen binds the addresses the agent serves on, before anything is
// loaded into the kernel: an address in use fails the start at once and
// leaves nothing attached.
func (a *Agent) listen() (metrics, pprof net.Listener, err error) {
	if a.cfg.MetricsAddr != "" {
		if metrics, err = net.Listen("tcp", a.cfg.MetricsAddr); err != nil {
			return nil, nil, fmt.Errorf("--metrics-addr %s: %w", a.cfg.MetricsAddr, err)
		}
	}
	if a.cfg.PprofAddr != "" {
		if pprof, err = net.Listen("tcp", a.cfg.PprofAddr); err != nil {
			if metrics != nil {
				metrics.Close()
			}
			return nil, nil, fmt.Errorf("--pprof-addr %s: %w", a.cfg.PprofAddr, err)
		}
	}
	return metrics, pprof, nil
}

// startPprof serves Go's profiles on the loopback address of --pprof-addr.
func (a *Agent) startPprof(ln net.Listener) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.WithError(err).Error("pprof server stopped")
		}
	}()
	a.log.WithField("addr", ln.Addr().String()).Info("serving Go profiles")
	return srv, nil
}

// policyCollector exports the tracing policies by state, their events and
// what the kernel folded.
type policyCollector struct {
	a                                          *Agent
	state, events, folded, foldFull, protected *prometheus.Desc
}

func newPolicyCollector(a *Agent) prometheus.Collector {
	return &policyCollector{
		a:      a,
		state:  prometheus.NewDesc("vigil_tracing_policies", "Tracing policies by state (loaded, error, disabled).", []string{"state"}, nil),
		events: prometheus.NewDesc("vigil_tracing_policy_events_total", "Events produced by each loaded tracing policy.", []string{"policy"}, nil),
		folded: prometheus.NewDesc("vigil_tracing_policy_calls_folded_total",
			"Calls the kernel folded into the repeat count of an event already reported, per policy.", []string{"policy"}, nil),
		foldFull: prometheus.NewDesc("vigil_tracing_policy_fold_table_full_total",
			"Calls reported on their own because the kernel's table of folds was full, per policy.", []string{"policy"}, nil),
		protected: prometheus.NewDesc("vigil_tracing_policy_enforcement_skipped_protected_total",
			"Sigkill, Signal and Override actions not taken because the process was protected (the agent, its parents, PID 1, a protected binary, a kernel thread), per policy.", []string{"policy"}, nil),
	}
}

func (c *policyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.state
	ch <- c.events
	ch <- c.folded
	ch <- c.foldFull
	ch <- c.protected
}

func (c *policyCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]int{"loaded": 0, "error": 0, StateDisabled: 0}
	for _, p := range c.a.policyStatuses() {
		counts[p.State]++
		if p.State == "loaded" {
			name := p.Name
			if p.Namespace != "" {
				name = p.Namespace + "/" + p.Name
			}
			ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(p.Events), name)
			var folded, full, protected uint64
			for _, h := range p.Hooks {
				folded += h.Folded
				full += h.FoldFull
				protected += h.Protected
			}
			ch <- prometheus.MustNewConstMetric(c.folded, prometheus.CounterValue, float64(folded), name)
			ch <- prometheus.MustNewConstMetric(c.foldFull, prometheus.CounterValue, float64(full), name)
			ch <- prometheus.MustNewConstMetric(c.protected, prometheus.CounterValue, float64(protected), name)
		}
	}
	for s, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, float64(n), s)
	}
}

// flowFoldMetrics are the counters of what the flow decoder folded.
func flowFoldMetrics(f *flows.Folds) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "vigil_flows_folded_total",
			Help: "Flows counted into the count of a flow event instead of reported on their own (--flow-repeats).",
		}, func() float64 { return float64(f.Folded()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "vigil_flows_fold_table_full_total",
			Help: "Flows reported on their own because the table of repeated flows was full.",
		}, func() float64 { return float64(f.TableFull()) }),
	}
}

// bpfCollector exports the run count and run time of the agent's BPF
// programs from the kernel's statistics (--bpf-stats turns them on).
type bpfCollector struct {
	runs, ns *prometheus.Desc
	// names are the names of the programs seen, by ID ("" for programs not
	// the agent's): a program's name never changes and IDs are not reused,
	// and reading it (the program's full information, with its BTF) cost
	// about 1 MB of allocations per scrape with the programs of one agent.
	mu    sync.Mutex
	names map[ebpf.ProgramID]string
}

// agentProgramPrefixes are the names of the agent's programs, as the kernel
// truncates them (15 characters).
var agentProgramPrefixes = []string{"generic_", "tp_btf_", "raw_tp_", "flow_", "np_"}

func newBPFCollector() prometheus.Collector {
	return &bpfCollector{
		names: map[ebpf.ProgramID]string{},
		runs:  prometheus.NewDesc("vigil_bpf_program_runs_total", "Runs of the agent's BPF programs (kernel BPF stats).", []string{"program"}, nil),
		ns:    prometheus.NewDesc("vigil_bpf_program_run_seconds_total", "Time spent in the agent's BPF programs (kernel BPF stats).", []string{"program"}, nil),
	}
}

func (c *bpfCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.runs
	ch <- c.ns
}

func (c *bpfCollector) Collect(ch chan<- prometheus.Metric) {
	type sum struct {
		runs uint64
		ns   time.Duration
	}
	sums := map[string]*sum{}
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := make(map[ebpf.ProgramID]bool, len(c.names))
	for id := ebpf.ProgramID(0); ; {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			break
		}
		id = next
		seen[id] = true
		name, known := c.names[id]
		if known && name == "" {
			continue
		}
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		if !known {
			info, err := p.Info()
			if err == nil && hasAnyPrefix(info.Name, agentProgramPrefixes) {
				name = info.Name
			}
			if err == nil {
				c.names[id] = name
			}
			if name == "" {
				p.Close()
				continue
			}
		}
		st, err := p.Stats()
		p.Close()
		if err != nil {
			continue
		}
		s := sums[name]
		if s == nil {
			s = &sum{}
			sums[name] = s
		}
		s.runs += st.RunCount
		s.ns += st.Runtime
	}
	for id := range c.names {
		if !seen[id] {
			delete(c.names, id)
		}
	}
	for name, s := range sums {
		ch <- prometheus.MustNewConstMetric(c.runs, prometheus.CounterValue, float64(s.runs), name)
		ch <- prometheus.MustNewConstMetric(c.ns, prometheus.CounterValue, s.ns.Seconds(), name)
	}
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
