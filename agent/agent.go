package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/exporter"
	"github.com/vigilsec/vigil/flows"
	"github.com/vigilsec/vigil/identity"
	"github.com/vigilsec/vigil/k8spolicies"
	"github.com/vigilsec/vigil/kprobes"
	"github.com/vigilsec/vigil/pipeline"
	"github.com/vigilsec/vigil/process"
	"github.com/vigilsec/vigil/rules"
	"github.com/vigilsec/vigil/tracingsensor"
	"github.com/vigilsec/vigil/ui"
)

// Log field keys.
const (
	logFieldComponent = "component"
	logFieldMechanism = "mechanism"
	logFieldCount     = "count"
)

// Agent is one running Vigil agent. Create it with New and run it with Run.
type Agent struct {
	cfg   Config
	log   *logrus.Logger
	reg   *prometheus.Registry
	ready atomic.Bool

	exp *exporter.Exporter
	ts  *tracingsensor.Sensor
	pm  *policyManager
	np  *netpolManager

	// What `vigil status` reports; written by Run before the control
	// socket serves.
	startedAt time.Time
	feats     *kprobes.Features
	sensors   []SensorStatus
	// logs keeps the last log lines for vigil bugtool.
	logs *logRing
}

// New checks cfg and prepares an agent. It touches neither the kernel nor
// the network; Run does.
func New(cfg Config, log *logrus.Logger) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Export.NodeName = cfg.NodeName
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: "vigil"}))
	reg.MustRegister(collectors.NewGoCollector())
	exp, err := exporter.New(cfg.Export, log.WithField(logFieldComponent, "exporter"), reg)
	if err != nil {
		return nil, err
	}
	logs := newLogRing()
	log.AddHook(logs)
	return &Agent{cfg: cfg, log: log, reg: reg, exp: exp, logs: logs}, nil
}

// Subscribe starts a live tail of the agent's event stream (see
// exporter.Exporter.Subscribe).
func (a *Agent) Subscribe(opts exporter.SubscribeOptions) *exporter.Subscription {
	return a.exp.Subscribe(opts)
}

// Registry is the agent's metrics registry.
func (a *Agent) Registry() *prometheus.Registry { return a.reg }

// Ready reports whether every sensor and initial policy is attached.
func (a *Agent) Ready() bool { return a.ready.Load() }

// Run loads and attaches the sensors, streams events until ctx ends, then
// detaches everything and flushes the sinks. The route of each event is the
// pipeline's (see package pipeline); Run only wires its parts, in the order
// that keeps every process's events complete: the process sensor first, the
// running processes read from /proc before records are decoded, identities
// synced before policies that select pods load.
func (a *Agent) Run(ctx context.Context) (err error) {
	log := a.log
	if err := rlimit.RemoveMemlock(); err != nil {
		return fmt.Errorf("remove memlock limit: %w", err)
	}
	a.startedAt = time.Now()
	feats, err := kprobes.Probe(nil)
	if err != nil {
		return err
	}
	a.feats = feats
	cgroupRoot := feats.Kernel.Cgroup2
	metricsLn, pprofLn, err := a.listen()
	if err != nil {
		return err
	}
	for _, ln := range []net.Listener{metricsLn, pprofLn} {
		if ln != nil {
			defer ln.Close()
		}
	}

	// Programs that an earlier run pinned (--keep-enforcement-on-exit)
	// enforce until this run's policies are loaded and it takes over.
	hand, err := openHandover(a.cfg.BPFPinDir, a.cfg.KeepEnforcementOnExit, log.WithField(logFieldComponent, "keep"))
	if err != nil {
		return err
	}
	defer hand.close()
	tookOver := false
	defer func() {
		if !tookOver {
			hand.abandon()
		}
	}()

	a.cfg.Identity.NodeName = a.cfg.NodeName
	ids, err := identity.New(a.cfg.Identity, cgroupRoot, log.WithField(logFieldComponent, "identity"), a.reg)
	if err != nil {
		return err
	}
	procCap := a.cfg.ProcessCacheSize
	if procCap == 0 {
		procCap = process.NodeMaxEntries(a.cfg.ProcRoot)
	}
	log.WithField("processes", procCap).Debug("process cache size")
	cache, err := process.NewCache(process.Config{
		NodeName:   a.cfg.NodeName,
		MaxEntries: procCap,
		HostNS:     process.HostNamespaces(a.cfg.ProcRoot),
		Pods:       podLookup{ids},
	})
	if err != nil {
		return fmt.Errorf("--process-cache-size: %w", err)
	}
	a.reg.MustRegister(newCacheCollector(cache), newPolicyCollector(a), newBPFCollector())
	if a.cfg.BPFStats {
		stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
		if err != nil {
			log.WithError(err).Warn("--bpf-stats: cannot enable the kernel's BPF statistics")
		} else {
			defer stats.Close()
		}
	}
	var detections *rules.Engine
	var detect pipeline.Detector
	if a.cfg.Rules.Enabled() {
		a.cfg.Rules.NodeName = a.cfg.NodeName
		detections, err = rules.New(a.cfg.Rules, log.WithField(logFieldComponent, "rules"), a.reg, a.exp)
		if err != nil {
			return fmt.Errorf("rules: %w", err)
		}
		detect = detections
		log.WithField("rules", len(detections.Rules())).Info("detection rules loaded")
		a.noteSensor("rules", "", fmt.Sprintf("%d detection rules", len(detections.Rules())))
	}

	procs, err := process.NewSensor(&process.SensorOptions{
		RingBufferSize: uint32(a.cfg.RingBufferSize),
		MaxProcesses:   uint32(procCap),
		RawTracepoints: a.cfg.RawTracepoints,
		PinDir:         hand.processPins(),
	}, feats)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := procs.Close(); cerr != nil {
			log.WithError(cerr).Warn("detach process sensor")
		}
	}()
	log.WithField(logFieldMechanism, procs.Mechanism()).Info("process sensor attached")
	a.noteSensor("process", string(procs.Mechanism()), "exec, fork and exit")
	filters, err := a.resolveExecFilter(cgroupRoot)
	if err != nil {
		return err
	}
	if err := procs.SetExecFilters(filters); err != nil {
		return err
	}

	pipe, err := pipeline.New(pipeline.Config{HoldTimeout: a.cfg.Identity.HoldTimeout, HoldMax: a.cfg.Identity.HoldMax},
		procs.Events(), procs.RingReader(), ids, detect, a.exp, a.reg, log.WithField(logFieldComponent, "pipeline"))
	if err != nil {
		return err
	}
	decoded := pipe.Decoded()
	pipe.Route(process.NewDecoder(cache, decoded).Routes()...)

	protect := &protectedBinaries{patterns: a.cfg.ProtectBinaries, path: os.Getenv("PATH"), roots: protectRoots(a.cfg.ProcRoot),
		log: log.WithField(logFieldComponent, "protect")}
	protectBins, err := protect.resolve()
	if err != nil {
		return fmt.Errorf("--protect-binaries: %w", err)
	}
	a.ts, err = tracingsensor.New(tracingsensor.Config{Tracefs: feats.Kernel.Tracefs, ProcRoot: a.cfg.ProcRoot,
		Protect:    tracingsensor.Protection{Binaries: protectBins},
		Generation: hand.gen, Active: hand.active, PinDir: hand.policyPins()},
		procs, feats, cache, decoded, log.WithField(logFieldComponent, "tracing"))
	if err != nil {
		return err
	}
	defer a.ts.Close()
	protect.ts = a.ts
	a.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vigil_protected_binaries",
		Help: "Executable paths whose processes policies do not act on (--protect-binaries, resolved at start and whenever their directories change)."},
		func() float64 { return float64(len(a.ts.ProtectedBinaries())) }))
	log.WithField("binaries", strings.Join(protectBins, ",")).Info("protected from enforcement: the agent, its parents, PID 1, kernel threads and these binaries")
	pipe.Route(a.ts.Routes()...)
	a.pm = newPolicyManager(a.ts, feats.Kernel.Tracefs, log.WithField(logFieldComponent, "policies"))
	a.noteSensor("tracing", "", "tracing policies (mechanism per hook: see policies)")

	eps := &flows.PodEndpoints{}
	var flowFolds *flows.Folds
	var dnsNames *flows.Names
	if a.cfg.NetpolDNS.Visibility {
		dnsNames = flows.NewNames(a.cfg.NetpolDNS.MinTTL, 0)
	}
	if report, _ := flows.ParseReport(a.cfg.Flows); report != flows.ReportOff {
		fs, err := flows.NewSensor(procs, cgroupRoot, report, feats)
		if err != nil {
			return fmt.Errorf("flow sensor: %w", err)
		}
		defer fs.Close()
		window, _ := flows.ParseRepeats(a.cfg.FlowRepeats)
		flowFolds = flows.NewFolds(window)
		a.reg.MustRegister(flowFoldMetrics(flowFolds)...)
		fd := flows.NewDecoder(cache, decoded, eps)
		fd.Fold(flowFolds)
		fd.Names(dnsNames)
		pipe.Route(fd.Routes()...)
		log.WithField("report", a.cfg.Flows).Info("flow sensor attached")
		a.noteSensor("flows", "cgroup", "report "+a.cfg.Flows)
	}
	if dnsNames != nil {
		dv, err := startDNSVisibility(procs, cgroupRoot, cache, decoded, eps, ids, pipe, dnsNames, a.reg)
		if err != nil {
			return fmt.Errorf("--dns-visibility: %w", err)
		}
		defer dv.close()
		go dv.sweep(ctx)
		log.Info("DNS visibility attached")
		a.noteSensor("dns", "cgroup", "DNS queries and answers as L7 flows")
	}

	// Processes that started before the sensor: their records are not in
	// the ring buffer, /proc has them. The pipeline starts after the scan,
	// so records that arrived meanwhile are applied on top of it.
	n, err := a.scanProc(cache, procs, cgroupRoot)
	if err != nil {
		return err
	}
	log.WithField(logFieldCount, n).Info("read running processes from /proc")

	// Identity: follow pods as they come and go; the first state is waited
	// for (bounded) so that processes read from /proc and policies scoped
	// to pods start with it.
	kubePolicies := a.cfg.Identity.KubernetesEnabled() && (a.cfg.KubernetesTracingPolicies || a.cfg.KubernetesNetworkPolicies)
	var np *netpolManager
	if len(a.cfg.NetworkPolicies) > 0 || (a.cfg.Identity.KubernetesEnabled() && a.cfg.KubernetesNetworkPolicies) {
		pins := netpolPins{dir: netpolPinDir(a.cfg.BPFPinDir), keep: a.cfg.KeepEnforcementOnExit,
			lost: func(n uint64) { a.exp.ReportLost(lostNoAgent, n) }}
		np, err = newNetpolManager(a.cfg.NetworkPolicies, cgroupRoot, pins, a.cfg.NetpolDNS, a.cfg.NetpolHTTP, ids, cache, decoded, eps, a.reg, log.WithField(logFieldComponent, "netpol"))
		if err != nil {
			return fmt.Errorf("network policy: %w", err)
		}
		defer np.close()
		np.names = dnsNames
		if a.cfg.Identity.KubernetesEnabled() && a.cfg.KubernetesNetworkPolicies {
			// Programs an earlier run kept enforce until the cluster's
			// policies are read too.
			np.keep.hold = make(chan struct{})
		}
		a.noteSensor("network-policy", "cgroup", "NetworkPolicy and CiliumNetworkPolicy enforcement")
		pipe.KernelLosses(func() (uint64, error) { return np.lostRecords(), nil })
	}
	// Pods and their labels and addresses make the network identities,
	// also those of pods with no cgroup on this node.
	ids.OnWorkloadsChange(func() {
		eps.Set(podsByIP(ids))
		if np != nil {
			np.changed()
		}
	})
	ids.OnChange(func(cg uint64, pod *event.Pod) {
		cache.SetPod(cg, pod)
		pipe.PodKnown(cg, pod)
		if err := a.ts.RefreshScopes(); err != nil {
			log.WithError(err).Warn("update policy scopes")
		}
	})
	idCtx, stopIdentity := context.WithCancel(ctx)
	defer stopIdentity()
	idDone := make(chan error, 1)
	go func() { idDone <- ids.Run(idCtx) }()
	defer func() { stopIdentity(); <-idDone }()
	select {
	case <-ids.Synced():
	case <-ctx.Done():
		return nil
	}
	eps.Set(podsByIP(ids))
	for _, w := range ids.Workloads() {
		for _, cg := range w.CgroupIDs {
			if pod, _ := ids.PodForCgroup(cg); pod != nil {
				cache.SetPod(cg, pod)
			}
		}
	}
	if err := a.ts.SetScoper(scoper(ids)); err != nil {
		log.WithError(err).Warn("policy scopes")
	}
	if np != nil {
		// This apply has every pod known so far: the changes reported
		// while the identities synced need no second one.
		np.drainKick()
		if err := np.apply(ctx); err != nil {
			log.WithError(err).Warn("some network policies are not in force")
		}
	}

	// Policies load after /proc is read, so that follow bits reach running
	// processes. A policy that fails is reported and the others still load.
	if !a.cfg.NoDefaultPolicies {
		if err := a.pm.loadEmbedded(DefaultPolicies); err != nil {
			log.WithError(err).Warn("some embedded default policies did not load")
		}
	}
	for _, p := range a.cfg.Policies {
		if err := a.pm.loadPath(p); err != nil {
			log.WithError(err).Warn("some policies did not load")
		}
	}

	// The exporter outlives the producers so that it can flush what they
	// sent; it stops when they have.
	expCtx, stopExporter := context.WithCancel(context.WithoutCancel(ctx))
	defer stopExporter()
	expDone := make(chan error, 1)
	go func() { expDone <- a.exp.Run(expCtx) }()

	k8sSynced := make(chan struct{})
	if !kubePolicies {
		close(k8sSynced)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return pipe.Run(gctx) })
	g.Go(func() error { return a.ts.RunFolds(gctx, pipe.Async()) })
	g.Go(func() error { return flowFolds.Run(gctx, pipe.Async()) })
	g.Go(func() error { return protect.run(gctx, protectBins) })
	a.np = np
	if kubePolicies {
		client, err := k8spolicies.NewClient(a.cfg.Identity.Kubeconfig)
		if err != nil {
			return fmt.Errorf("kubernetes policies: %w", err)
		}
		h := &clusterPolicies{pm: a.pm, np: np, tracing: a.cfg.KubernetesTracingPolicies, synced: k8sSynced}
		g.Go(func() error {
			return k8spolicies.Run(gctx, client, h, log.WithField(logFieldComponent, "k8s-policies"))
		})
	}
	if np != nil {
		if np.keep.hold != nil {
			g.Go(func() error { np.releaseAfter(gctx, k8sSynced, handoverWait); return nil })
		}
		g.Go(func() error { return np.run(gctx) })
		g.Go(func() error { return np.records(gctx) })
		g.Go(func() error { return np.sweepDNS(gctx) })
		g.Go(func() error { return np.http.run(gctx) })
	}
	if len(a.cfg.Policies) > 0 {
		g.Go(func() error { return a.pm.watch(gctx, a.cfg.Policies) })
	}
	if a.cfg.SocketPath != "" {
		ctl, err := a.serveControl()
		if err != nil {
			return err
		}
		g.Go(func() error {
			<-gctx.Done()
			ctl.Close()
			os.Remove(a.cfg.SocketPath)
			return nil
		})
	}
	if metricsLn != nil {
		srv, err := a.startHTTP(metricsLn)
		if err != nil {
			return err
		}
		g.Go(func() error {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		})
	}

	if pprofLn != nil {
		srv, err := a.startPprof(pprofLn)
		if err != nil {
			return err
		}
		g.Go(func() error {
			<-gctx.Done()
			return srv.Close()
		})
	}

	stopUI, err := ui.Start(gctx, a.cfg.UI, a.exp, log.WithField(logFieldComponent, "ui"))
	if err != nil {
		return err
	}
	defer stopUI()

	// The earlier run's programs stop acting when this run's, with the
	// cluster's policies too, are in place.
	if len(hand.earlier) > 0 {
		select {
		case <-k8sSynced:
		case <-time.After(handoverWait):
			log.WithField("waited", handoverWait).Warn("the cluster's tracing policies are not all read yet; taking over enforcement without them")
		case <-gctx.Done():
		}
	}
	if gctx.Err() == nil && np == nil {
		// Network-policy programs an earlier run kept enforce policies
		// this run does not have.
		removeNetpolKept(netpolPinDir(a.cfg.BPFPinDir), log)
	}
	if gctx.Err() == nil {
		if err := hand.takeOver(func(n uint64) { a.exp.ReportLost(lostNoAgent, n) }); err != nil {
			return err
		}
		tookOver = true
	}

	a.ready.Store(true)
	log.WithFields(logrus.Fields{"node": a.cfg.NodeName, "kernel": feats.Kernel.Release}).Info("agent ready")
	// The kernel's BTF decoded for the loads of start-up goes with the rest
	// of start-up's memory; a later policy change decodes it again.
	a.pm.started.Store(true)
	kprobes.ReleaseKernelTypes()
	if before, after, err := releaseStartupMemory(); err != nil {
		log.WithError(err).Debug("release the memory of start-up")
	} else {
		log.WithFields(logrus.Fields{"before": before.String(), "after": after.String()}).Info("released the memory of start-up")
	}

	runErr := g.Wait()
	a.ready.Store(false)
	stopExporter()
	if err := <-expDone; err != nil && !errors.Is(err, context.Canceled) {
		runErr = errors.Join(runErr, err)
	}
	log.Info("agent stopped")
	return runErr
}

func (a *Agent) resolveExecFilter(cgroupRoot string) (process.ExecFilters, error) {
	var f process.ExecFilters
	for _, p := range a.cfg.ExecFilter.CgroupPaths {
		if cgroupRoot == "" {
			return f, fmt.Errorf("--exec-filter-cgroup: no cgroup v2 hierarchy is mounted")
		}
		id, err := process.CgroupID(filepath.Join(cgroupRoot, p))
		if err != nil {
			return f, fmt.Errorf("--exec-filter-cgroup %s: %w", p, err)
		}
		f.CgroupIDs = append(f.CgroupIDs, id)
	}
	for _, ns := range a.cfg.ExecFilter.PidNamespaces {
		if ns == "host" {
			host := process.HostNamespaces(a.cfg.ProcRoot)
			if host.PidInum == 0 {
				return f, fmt.Errorf("--exec-filter-pidns host: cannot read %s/1/ns/pid", a.cfg.ProcRoot)
			}
			f.PidNS = append(f.PidNS, host.PidInum)
			continue
		}
		v, _ := strconv.ParseUint(ns, 10, 32)
		f.PidNS = append(f.PidNS, uint32(v))
	}
	f.Binaries = a.cfg.ExecFilter.Binaries
	return f, nil
}

func (a *Agent) scanProc(cache *process.Cache, sensor *process.Sensor, cgroupRoot string) (int, error) {
	recs, err := process.ReadProc(a.cfg.ProcRoot, cgroupRoot)
	if err != nil {
		return 0, err
	}
	self := uint32(os.Getpid())
	for i := range recs {
		r := &recs[i]
		cache.AddProc(r)
		if r.PID == self || r.Kernel {
			continue
		}
		if err := sensor.SeedProcess(r.PID, r.PPID, r.Binary, r.StartKtime); err != nil {
			a.log.WithError(err).Debug("seed kernel process table")
		}
	}
	return len(recs), nil
}

var _ process.Sink = (*exporter.Exporter)(nil)

// eventSink is what the agent needs of the exporter.
type eventSink interface {
	Export(*event.Event)
	ReportLost(reason string, n uint64)
}

var _ eventSink = (*exporter.Exporter)(nil)

// lostNoAgent is the reason of the records that programs kept after an
// earlier run's exit wrote while no agent read them (their actions were
// taken); they are counted when a new run takes over.
const lostNoAgent = "no_agent"

// handoverWait bounds how long a restarted agent waits for the cluster's
// tracing policies before it takes over from the programs an earlier run
// pinned.
const handoverWait = 30 * time.Second

// clusterPolicies hands policy objects from the cluster to the tracing
// policy manager and the network policy datapath.
type clusterPolicies struct {
	pm      *policyManager
	np      *netpolManager
	tracing bool
	synced  chan struct{}
	once    sync.Once
}

// Synced is called when every object of the first list was handed over.
func (c *clusterPolicies) Synced() { c.once.Do(func() { close(c.synced) }) }

var _ k8spolicies.SyncedHandler = (*clusterPolicies)(nil)

func (c *clusterPolicies) Apply(f k8spolicies.Family, source string, data []byte) {
	switch {
	case f == k8spolicies.Tracing && c.tracing:
		c.pm.applySource(source, data)
	case f == k8spolicies.Network && c.np != nil:
		c.np.setDoc(source, data)
	}
}

func (c *clusterPolicies) Remove(f k8spolicies.Family, source string) {
	switch {
	case f == k8spolicies.Tracing && c.tracing:
		c.pm.removeSource(source)
	case f == k8spolicies.Network && c.np != nil:
		c.np.setDoc(source, nil)
	}
}
