package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/flows"
	"github.com/vigilsec/vigil/identity"
	"github.com/vigilsec/vigil/internal/manifest"
	"github.com/vigilsec/vigil/networkpolicy"
	"github.com/vigilsec/vigil/networkpolicy/datapath"
	"github.com/vigilsec/vigil/process"
)

// netpolManager enforces network policies from files on the node's pods:
// it loads the datapath, applies the policies with the pods the identity
// resolver knows whenever either changes, and turns the datapath's verdict
// records into flow events.
//
// A change of pods is applied at once (changes that come during an apply
// are applied together right after it) and reads no file: the policy files
// are read again only when the watcher reports a change of them.
type netpolManager struct {
	dp      *datapath.Datapath
	paths   []string
	ids     *identity.Resolver
	cache   *process.Cache
	sink    process.Sink
	eps     *flows.PodEndpoints
	log     logrus.FieldLogger
	metrics *netpolMetrics
	keep    *netpolKeep
	// http is the HTTP proxy of rules.http and visibility ports.
	http *netpolHTTP
	kick chan struct{}
	// since is when the first change not applied yet was reported (unix
	// nanoseconds; 0: none).
	since atomic.Int64

	files *netpolFiles
	// parsed is the last good parse of the policy files; filesChanged asks
	// for them to be read again.
	parsed       *networkpolicy.Resources
	filesChanged bool

	// portWarned are the named-port warnings logged for the policies in
	// force, so that each is logged once.
	portWarned map[string]bool

	// names gives flows to addresses of DNS answers their names
	// (--dns-visibility); nil: none. Set before records runs.
	names *flows.Names

	// cluster are the policy documents from the cluster, by source.
	mu      sync.Mutex
	cluster clusterPolicyDocs
}

// setDoc adds, replaces or (data nil) removes a policy document from the
// cluster, and asks for a new apply.
func (m *netpolManager) setDoc(source string, data []byte) {
	m.mu.Lock()
	m.cluster.set(source, data)
	m.mu.Unlock()
	m.changed()
}

// clusterPolicies returns the policies from the cluster; a document that
// does not parse is left out and logged (once per version).
func (m *netpolManager) clusterPolicies() []*networkpolicy.Policy {
	m.mu.Lock()
	defer m.mu.Unlock()
	pols, refused := m.cluster.policies()
	for src, err := range refused {
		m.log.WithError(err).WithField("source", src).Warn("network policy from the cluster refused")
	}
	return pols
}

// workloadPods lists the identity resolver's pods for the datapath.
type workloadPods struct{ r *identity.Resolver }

func (w workloadPods) Pods(context.Context) ([]datapath.Pod, error) {
	var out []datapath.Pod
	for _, wl := range w.r.Workloads() {
		if wl.Pod == nil {
			continue
		}
		p := networkpolicy.Pod{
			Namespace: wl.Pod.Namespace, Name: wl.Pod.Name, ServiceAccount: wl.ServiceAccount,
			Labels: map[string]string{}, IPs: wl.IPs,
		}
		for _, l := range wl.Pod.Labels {
			p.Labels[l.Key] = l.Value
		}
		for _, port := range wl.Ports {
			proto := networkpolicy.ProtoTCP
			switch strings.ToUpper(port.Protocol) {
			case "UDP":
				proto = networkpolicy.ProtoUDP
			case "SCTP":
				proto = networkpolicy.ProtoSCTP
			}
			p.Ports = append(p.Ports, networkpolicy.ContainerPort{Name: port.Name, Protocol: proto, Port: port.Port})
		}
		out = append(out, datapath.Pod{Pod: p, CgroupIDs: wl.CgroupIDs})
	}
	return out, nil
}

// netpolPins is where the datapath keeps its programs attached
// (--keep-enforcement-on-exit) and finds those an earlier run kept.
type netpolPins struct {
	dir  string
	keep bool
	// lost counts the records the earlier programs wrote with no agent.
	lost func(uint64)
}

func newNetpolManager(paths []string, cgroupRoot string, pins netpolPins, dnsCfg NetpolDNS, httpCfg NetpolHTTP, ids *identity.Resolver, cache *process.Cache, sink process.Sink, eps *flows.PodEndpoints, reg prometheus.Registerer, log logrus.FieldLogger) (*netpolManager, error) {
	metrics, err := newNetpolMetrics(reg)
	if err != nil {
		return nil, err
	}
	keep, err := newNetpolKeep(reg)
	if err != nil {
		return nil, err
	}
	keep.lost = pins.lost
	cfg := datapath.Config{
		Workloads:   workloadPods{ids},
		CgroupRoot:  cgroupRoot,
		HostIPs:     hostIPs(),
		LinkPinDir:  pins.dir,
		KeepOnClose: pins.keep,
		// Visibility ports: what --http-visibility names.
		HTTPVisibility: httpCfg.Visibility,
	}
	dnsCfg.datapathConfig(&cfg)
	dp, err := datapath.New(cfg, log)
	if err != nil {
		return nil, err
	}
	if err := dp.Load(); err != nil {
		return nil, err
	}
	if reg != nil {
		if err := reg.Register(newDNSCollector(dp)); err != nil {
			dp.Close()
			return nil, fmt.Errorf("network policy metrics: %w", err)
		}
	}
	m := &netpolManager{dp: dp, paths: paths, ids: ids, cache: cache, sink: sink, eps: eps, log: log, metrics: metrics, keep: keep,
		kick: make(chan struct{}, 1), files: newNetpolFiles(paths), filesChanged: true,
		cluster: clusterPolicyDocs{docs: map[string]*clusterDoc{}}}
	if m.http, err = newNetpolHTTP(m, httpCfg, cgroupRoot, reg, log.WithField(logFieldComponent, "http-proxy")); err != nil {
		dp.Close()
		return nil, fmt.Errorf("HTTP proxy: %w", err)
	}
	if reg != nil {
		if err := reg.Register(newHTTPCollector(m.http.p, dp)); err != nil {
			m.http.close()
			dp.Close()
			return nil, fmt.Errorf("HTTP proxy metrics: %w", err)
		}
	}
	return m, nil
}

func hostIPs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr())
		}
	}
	return out
}

// apply brings the kernel to the policies and the current pods, reading
// the policy files first when they changed. Files that do not parse leave
// the policies of their last good version in force, and pods keep being
// applied with them.
func (m *netpolManager) apply(ctx context.Context) error {
	if m.keep.held(m.dp) {
		// Applied once the cluster's policies are in (releaseAfter).
		return nil
	}
	start := time.Now()
	since := m.since.Swap(0)
	var fileErr error
	res := &networkpolicy.Resources{}
	if m.filesChanged && len(m.paths) > 0 {
		m.filesChanged = false
		parsed, err := m.files.load()
		if err != nil {
			m.log.WithError(err).Error("network policy files refused; the policies in force stay")
			m.metrics.refused.Inc()
			fileErr = err
		} else {
			m.parsed = parsed
		}
	}
	if m.parsed != nil {
		res.Namespaces = slices.Clone(m.parsed.Namespaces)
		res.Policies = slices.Clone(m.parsed.Policies)
	}
	res.Policies = append(res.Policies, m.clusterPolicies()...)
	// Namespace labels the pods' sources know, unless a file declares the
	// namespace.
	declared := map[string]bool{}
	for _, ns := range res.Namespaces {
		declared[ns.Name] = true
	}
	for _, w := range m.ids.Workloads() {
		if w.Pod == nil || declared[w.Pod.Namespace] {
			continue
		}
		declared[w.Pod.Namespace] = true
		res.Namespaces = append(res.Namespaces, &networkpolicy.Namespace{Name: w.Pod.Namespace, Labels: w.NamespaceLabels})
	}
	parse := time.Since(start)
	st, times, err := m.dp.ApplyTimed(ctx, res)
	m.metrics.observe(parse, st, times, time.Since(start), since, err)
	m.keep.observe(m.dp, m.log)
	if err != nil {
		m.log.WithError(err).Error("apply network policies")
		return err
	}
	if e := m.dp.Engine(); e != nil {
		maps, entries := m.dp.Size()
		m.metrics.size(e.NumIdentities(), maps, entries)
	}
	m.http.sync()
	m.warnNamedPorts(ctx, res.Policies)
	m.log.WithFields(logrus.Fields{"policies": len(res.Policies), "maps_written": st.PolicyMapsWritten,
		"entries_written": st.Entries(), "took": time.Since(start).Round(time.Microsecond)}).Debug("network policies applied")
	return fileErr
}

// warnNamedPorts logs, once each, the named ports of the policies in force
// that no pod on the node has.
func (m *netpolManager) warnNamedPorts(ctx context.Context, pols []*networkpolicy.Policy) {
	dps, err := workloadPods{m.ids}.Pods(ctx)
	if err != nil {
		return
	}
	pods := make([]*networkpolicy.Pod, len(dps))
	for i := range dps {
		pods[i] = &dps[i].Pod
	}
	m.portWarned = logNewWarnings(m.log, networkpolicy.NamedPortWarnings(pols, pods), m.portWarned)
}

// logNewWarnings logs the warnings that are not in logged (those of the
// previous apply) and returns the set of the current ones: a warning is
// logged when it appears, not at every apply.
func logNewWarnings(log logrus.FieldLogger, warns manifest.Errors, logged map[string]bool) map[string]bool {
	now := make(map[string]bool, len(warns))
	for _, w := range warns {
		key := w.Error()
		now[key] = true
		if !logged[key] {
			log.WithFields(logrus.Fields{"file": w.File, "line": w.Line, "field": w.Path}).Warn("network policy: " + w.Msg)
		}
	}
	return now
}

// changed asks for a new apply (pods or cluster policies changed).
func (m *netpolManager) changed() {
	m.since.CompareAndSwap(0, time.Now().UnixNano())
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// drainKick forgets a pending request for an apply.
func (m *netpolManager) drainKick() {
	select {
	case <-m.kick:
	default:
	}
	m.since.Store(0)
}

// filesDebounce gathers the events an editor's save of a policy file
// makes.
const filesDebounce = 200 * time.Millisecond

// run applies changes until ctx ends: pod changes at once, policy file
// changes once their events settle.
func (m *netpolManager) run(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch network policies: %w", err)
	}
	defer w.Close()
	for _, p := range m.paths {
		abs, _ := filepath.Abs(p)
		if fi, err := os.Stat(abs); err == nil && !fi.IsDir() {
			abs = filepath.Dir(abs)
		}
		if err := w.Add(abs); err != nil {
			m.log.WithError(err).WithField("path", abs).Warn("cannot watch network policies")
		}
	}
	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-w.Events:
			if manifest.IsManifestFile(ev.Name) {
				timer = time.After(filesDebounce)
			}
		case <-w.Errors:
		case <-m.kick:
			m.apply(ctx)
		case <-timer:
			timer = nil
			m.filesChanged = true
			m.apply(ctx)
		}
	}
}

// records turns verdict records (drops and audits) into flow events.
func (m *netpolManager) records(ctx context.Context) error {
	rd, err := m.dp.Records()
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { rd.Close() })
	defer stop()
	var ev event.Event
	for {
		r, err := rd.Read()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, os.ErrClosed) {
				return nil
			}
			m.log.WithError(err).Debug("network policy record")
			continue
		}
		f := r.Flow()
		ev = event.Event{Type: event.TypeFlow, Time: m.cache.Clock().Wall(r.KtimeNS), Flow: f}
		if r.TGID != 0 {
			ev.Process, ev.Parent = m.cache.Get(r.TGID)
		}
		local, remote := &f.SourceEndpoint, &f.DestEndpoint
		remoteAddr := f.Destination
		if f.Direction == event.DirectionIngress {
			local, remote = remote, local
			remoteAddr = f.Source
		}
		var pod *event.Pod
		if ev.Process != nil {
			pod = ev.Process.Pod
		} else if p, _ := m.ids.PodForCgroup(r.CgroupID); p != nil {
			pod = p
		}
		lid, rid := local.Identity, remote.Identity
		flows.FillFromPod(local, pod)
		m.eps.Remote(remoteAddr, remote)
		local.Identity, remote.Identity = lid, rid
		if m.names != nil && f.Direction == event.DirectionEgress {
			f.DestinationNames = m.names.Lookup(flows.OwnerOf(pod, r.CgroupID), remoteAddr, ev.Time)
		}
		m.sink.Export(&ev)
	}
}

func (m *netpolManager) close() error { return errors.Join(m.http.close(), m.dp.Close()) }

// lostRecords returns how many verdict records the kernel could not write
// to the datapath's ring buffer since load.
func (m *netpolManager) lostRecords() uint64 {
	st, err := m.dp.Stats()
	if err != nil {
		return 0
	}
	return st.RecordsLost
}
