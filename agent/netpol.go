package agent

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
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
type netpolManager struct {
	dp    *datapath.Datapath
	paths []string
	ids   *identity.Resolver
	cache *process.Cache
	sink  process.Sink
	eps   *flows.PodEndpoints
	log   logrus.FieldLogger
	kick  chan struct{}

	// parsed is the last parse of the policy files and parsedSum the
	// digest of the documents it came from: pods coming and going
	// re-apply the policies without parsing the files again.
	parsed    *networkpolicy.Resources
	parsedSum [sha256.Size]byte

	// portWarned are the named-port warnings logged for the policies in
	// force, so that each is logged once.
	portWarned map[string]bool

	// docs are policy documents from the cluster, by source.
	mu   sync.Mutex
	docs map[string][]byte
}

// setDoc adds, replaces or (data nil) removes a policy document from the
// cluster, and asks for a new apply.
func (m *netpolManager) setDoc(source string, data []byte) {
	m.mu.Lock()
	if data == nil {
		delete(m.docs, source)
	} else {
		m.docs[source] = data
	}
	m.mu.Unlock()
	m.changed()
}

// clusterResources parses the documents from the cluster; one that does not
// parse is left out and logged.
func (m *netpolManager) clusterResources() *networkpolicy.Resources {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := &networkpolicy.Resources{}
	for src, data := range m.docs {
		docs, err := manifest.Split(src, data)
		if err == nil {
			var res *networkpolicy.Resources
			if res, err = networkpolicy.Parse(docs); err == nil {
				out.Policies = append(out.Policies, res.Policies...)
				continue
			}
		}
		m.log.WithError(err).WithField("source", src).Warn("network policy from the cluster refused")
	}
	return out
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

func newNetpolManager(paths []string, cgroupRoot string, ids *identity.Resolver, cache *process.Cache, sink process.Sink, eps *flows.PodEndpoints, log logrus.FieldLogger) (*netpolManager, error) {
	dp, err := datapath.New(datapath.Config{
		Workloads:  workloadPods{ids},
		CgroupRoot: cgroupRoot,
		HostIPs:    hostIPs(),
	}, log)
	if err != nil {
		return nil, err
	}
	if err := dp.Load(); err != nil {
		return nil, err
	}
	return &netpolManager{dp: dp, paths: paths, ids: ids, cache: cache, sink: sink, eps: eps, log: log,
		kick: make(chan struct{}, 1), docs: map[string][]byte{}}, nil
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

// apply loads the policy files and brings the kernel to them and the
// current pods. A file that does not parse leaves the policies in force.
func (m *netpolManager) apply(ctx context.Context) error {
	start := time.Now()
	res := &networkpolicy.Resources{}
	if len(m.paths) > 0 {
		var err error
		if res, err = m.loadFiles(); err != nil {
			m.log.WithError(err).Error("network policy files refused; the policies in force stay")
			return err
		}
	}
	res.Policies = append(res.Policies, m.clusterResources().Policies...)
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
	st, err := m.dp.Apply(ctx, res)
	if err != nil {
		m.log.WithError(err).Error("apply network policies")
		return err
	}
	m.warnNamedPorts(ctx, res.Policies)
	m.log.WithFields(logrus.Fields{"policies": len(res.Policies), "maps_written": st.PolicyMapsWritten, "ipcache_updated": st.IPCacheUpdated,
		"took": time.Since(start).Round(time.Millisecond)}).Debug("network policies applied")
	return nil
}

// loadFiles reads the policy files as networkpolicy.Load does, parsing them
// only when their documents changed since the last call. The result is the
// caller's to extend.
func (m *netpolManager) loadFiles() (*networkpolicy.Resources, error) {
	var docs []*manifest.Document
	var errs manifest.Errors
	h := sha256.New()
	for _, path := range m.paths {
		d, err := manifest.ReadPath(path)
		if err != nil {
			errs = append(errs, manifest.AsErrors(path, err)...)
		}
		for _, doc := range d {
			h.Write([]byte(doc.File + ":" + strconv.Itoa(doc.Line) + "\x00"))
			h.Write(doc.Raw())
			h.Write([]byte{0})
		}
		docs = append(docs, d...)
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	if m.parsed == nil || sum != m.parsedSum {
		res, err := networkpolicy.Parse(docs)
		if err != nil {
			return nil, err
		}
		if err := agentKinds(res); err != nil {
			return nil, err
		}
		m.parsed, m.parsedSum = res, sum
	}
	r := *m.parsed
	r.Namespaces = slices.Clone(r.Namespaces)
	r.Pods = slices.Clone(r.Pods)
	r.Policies = slices.Clone(r.Policies)
	r.HostIPs = slices.Clone(r.HostIPs)
	r.Ignored = slices.Clone(r.Ignored)
	return &r, nil
}

// agentKinds refuses the documents of the agent's network-policy files
// that it would not use: everything but policies and namespaces. The agent
// takes pods from the node, so a Pod or Deployment there would be ignored,
// and an ignored document must never be silent.
func agentKinds(res *networkpolicy.Resources) error {
	var errs manifest.Errors
	for _, ig := range res.Ignored {
		e := *ig
		e.Msg = strings.Replace(e.Msg, "does not affect connectivity: ignored",
			"is not a network policy; the agent's network-policy files hold NetworkPolicy, CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy and Namespace documents", 1)
		errs = append(errs, &e)
	}
	for _, p := range res.Pods {
		what := "Pod " + p.Key()
		if p.Workload != "" {
			what = p.Workload + " in " + p.Namespace
		}
		errs = append(errs, &manifest.Error{File: p.File, Line: p.Line,
			Msg: what + ": the agent takes pods from the node (CRI, Kubernetes, Workload files), not from network-policy files; remove it"})
	}
	errs.Sort()
	return errs.Err()
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

// changed asks for a new apply soon (pods came or went).
func (m *netpolManager) changed() {
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
}

// run applies changes (debounced) until ctx ends.
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
				timer = time.After(200 * time.Millisecond)
			}
		case <-w.Errors:
		case <-m.kick:
			timer = time.After(50 * time.Millisecond)
		case <-timer:
			timer = nil
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
		m.sink.Export(&ev)
	}
}

func (m *netpolManager) close() error { return m.dp.Close() }

// lostRecords returns how many verdict records the kernel could not write
// to the datapath's ring buffer since load.
func (m *netpolManager) lostRecords() uint64 {
	st, err := m.dp.Stats()
	if err != nil {
		return 0
	}
	return st.RecordsLost
}
