package identity

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"golang.org/x/time/rate"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/identity/cgroup"
	"github.com/vigilsec/vigil/identity/source"
)

const (
	// missQueue is how many cgroup misses may wait for the Run goroutine.
	missQueue = 4096
	// minRescan is the least time between two walks of the cgroup tree
	// triggered by changes (the periodic one is CgroupRescanInterval).
	minRescan = 250 * time.Millisecond
	// notFoundRetry is how long a container the sources did not know is
	// not looked up again (a later listing still finds it).
	notFoundRetry = 5 * time.Second
	// syncTimeout bounds how long Synced waits for slow sources.
	syncTimeout = 15 * time.Second
	// goneKeep is how long a cgroup id that vanished before it could be
	// resolved is remembered.
	goneKeep = time.Minute
)

// slot is what the hot path knows of one cgroup id.
type slot struct {
	pod     *event.Pod
	pending bool
}

// Resolver maps cgroup ids to pods. See the package documentation.
type Resolver struct {
	cfg        Config
	cgroupRoot string
	log        logrus.FieldLogger
	metrics    *metrics
	rlog       *rateLog
	sources    []source.Source
	lookers    []namedLooker
	opener     *cgroup.Opener

	hot       atomic.Pointer[map[uint64]slot]
	workloads atomic.Pointer[[]Workload]
	misses    chan uint64
	kick      chan struct{}
	synced    chan struct{}

	cbMu      sync.Mutex
	callbacks []func(uint64, *event.Pod)
	wlChanged []func()

	// Sink side: sources write, the Run goroutine reads.
	mu         sync.Mutex
	state      map[string]map[string]source.Pod
	syncedSrcs map[string]bool
	down       map[string]bool

	// Owned by the Run goroutine.
	paths      map[uint64]cgEntry
	checked    map[string]time.Time // containers (and start times) a walk looked for
	gone       map[uint64]time.Time
	asked      map[uint64]bool
	view       *view
	podCache   map[string]*event.Pod
	notFound   map[string]time.Time
	inflight   map[string]bool
	lookupQ    chan string
	results    chan lookupResult
	lastRescan time.Time
	walkErr    error
	// deferred are misses waiting for the next allowed walk at retry.
	deferred map[uint64]bool
	retry    <-chan time.Time
}

// cgEntry is one indexed cgroup.
type cgEntry struct {
	path string
	info cgroup.Info
}

type namedLooker struct {
	name string
	l    source.Looker
}

type lookupResult struct {
	containerID string
	source      string
	pod         source.Pod
	err         error
}

// New returns a resolver for the cgroup2 hierarchy mounted at cgroupRoot
// (empty: found in /proc/self/mountinfo) with the sources cfg selects.
// Metrics are registered with reg when it is not nil. Sources that cannot
// work (no runtime socket, not in a cluster) are left out with a log line,
// except when cfg asks for them explicitly.
func New(cfg Config, cgroupRoot string, log logrus.FieldLogger, reg prometheus.Registerer) (*Resolver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = discard()
	}
	srcs, err := buildSources(&cfg, log)
	if err != nil {
		return nil, err
	}
	return NewWithSources(cfg, cgroupRoot, log, reg, srcs...)
}

// NewWithSources returns a resolver fed by the given sources only (tests,
// and callers with their own sources). cfg's source fields are ignored.
func NewWithSources(cfg Config, cgroupRoot string, log logrus.FieldLogger, reg prometheus.Registerer, srcs ...source.Source) (*Resolver, error) {
	if cgroupRoot == "" {
		mp, err := cgroup.Mountpoint()
		if err != nil {
			return nil, fmt.Errorf("identity: %w", err)
		}
		cgroupRoot = mp
	}
	d := DefaultConfig()
	if cfg.LookupWorkers <= 0 {
		cfg.LookupWorkers = d.LookupWorkers
	}
	if cfg.LookupRate <= 0 {
		cfg.LookupRate = d.LookupRate
	}
	if cfg.CgroupRescanInterval <= 0 {
		cfg.CgroupRescanInterval = d.CgroupRescanInterval
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("identity: register metrics: %w", err)
	}
	if log == nil {
		log = discard()
	}
	r := &Resolver{
		cfg: cfg, cgroupRoot: cgroupRoot, log: log.WithField("component", "identity"),
		metrics: m, rlog: newRateLog(), sources: srcs,
		misses: make(chan uint64, missQueue), kick: make(chan struct{}, 1), synced: make(chan struct{}),
		state: map[string]map[string]source.Pod{}, syncedSrcs: map[string]bool{}, down: map[string]bool{},
		paths: map[uint64]cgEntry{}, checked: map[string]time.Time{}, gone: map[uint64]time.Time{}, asked: map[uint64]bool{},
		podCache: map[string]*event.Pod{}, notFound: map[string]time.Time{}, inflight: map[string]bool{},
		lookupQ: make(chan string, 1024), results: make(chan lookupResult, 64),
		view: &view{}, deferred: map[uint64]bool{},
	}
	empty := map[uint64]slot{}
	r.hot.Store(&empty)
	r.workloads.Store(&[]Workload{})
	for _, s := range srcs {
		if l, ok := s.(source.Looker); ok {
			r.lookers = append(r.lookers, namedLooker{s.Name(), l})
		}
		r.metrics.sourceUp.WithLabelValues(s.Name()).Set(1)
	}
	if o, err := cgroup.NewOpener(cgroupRoot); err == nil {
		r.opener = o
	} else {
		r.log.WithError(err).Warn("cannot open the cgroup2 mount; new cgroups are found by walking the tree")
	}
	return r, nil
}

// PodForCgroup returns the pod of the processes in the cgroup with this id.
// It is the hot path: a map lookup, no locks, syscalls or allocations.
//
// pending is true when the cgroup is a container's whose metadata is being
// looked up, or a cgroup not seen yet; the caller may hold the event until
// OnChange reports the cgroup (with its pod, or nil when there is none).
func (r *Resolver) PodForCgroup(cgroupID uint64) (pod *event.Pod, pending bool) {
	s, ok := (*r.hot.Load())[cgroupID]
	if ok {
		return s.pod, s.pending
	}
	select {
	case r.misses <- cgroupID:
	default:
		r.metrics.missesDropped.Inc()
	}
	return nil, true
}

// OnChange registers f, called from the Run goroutine whenever the pod of a
// cgroup becomes known or changes, when a pending cgroup turns out to have
// no pod (pod == nil), and when a cgroup with a pod is removed (pod == nil).
// f must not block for long.
func (r *Resolver) OnChange(f func(cgroupID uint64, pod *event.Pod)) {
	r.cbMu.Lock()
	r.callbacks = append(r.callbacks, f)
	r.cbMu.Unlock()
}

// OnWorkloadsChange registers f, called from the Run goroutine after the
// list Workloads returns changed: a pod came or went, or its labels,
// addresses, ports, namespace labels or cgroups changed. Pods of other
// nodes, known by their addresses only, change the list without any cgroup
// changing (OnChange is silent then). f must not block for long.
func (r *Resolver) OnWorkloadsChange(f func()) {
	r.cbMu.Lock()
	r.wlChanged = append(r.wlChanged, f)
	r.cbMu.Unlock()
}

// Workloads returns every known pod and standalone workload with its
// cgroups and addresses, sorted by namespace and name. The slice is shared:
// do not modify it.
func (r *Resolver) Workloads() []Workload { return *r.workloads.Load() }

// Synced is closed once every source reported its first state (or failed
// to, or 15 s passed) and the cgroup tree was indexed.
func (r *Resolver) Synced() <-chan struct{} { return r.synced }

// Run starts the sources, indexes the cgroup tree, and then follows changes
// until ctx ends. It returns nil then; failures of sources are logged and
// counted, never returned.
func (r *Resolver) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if r.opener != nil {
		defer r.opener.Close()
	}
	sink := &sink{r: r}
	for _, s := range r.sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Run(ctx, sink); err != nil {
				r.log.WithError(err).WithField(fieldSource, s.Name()).Error("metadata source stopped; pods it knows will lack metadata")
				r.metrics.sourceUp.WithLabelValues(s.Name()).Set(0)
				sink.Synced(s.Name())
			}
		}()
	}
	lim := rate.NewLimiter(rate.Limit(r.cfg.LookupRate), max(1, int(r.cfg.LookupRate)))
	for range r.cfg.LookupWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.lookupWorker(ctx, lim)
		}()
	}

	r.rescan()
	r.rebuild()
	syncDeadline := time.NewTimer(syncTimeout)
	defer syncDeadline.Stop()
	syncedDone := false
	markSynced := func() {
		if !syncedDone {
			syncedDone = true
			close(r.synced)
		}
	}
	if r.allSynced() {
		markSynced()
	}
	periodic := time.NewTicker(r.cfg.CgroupRescanInterval)
	defer periodic.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case id := <-r.misses:
			r.handleMisses(id)
		case <-r.kick:
			if r.needsRescan() {
				r.rescan()
			}
			r.rebuild()
			if !syncedDone && r.allSynced() {
				markSynced()
			}
		case res := <-r.results:
			r.handleLookup(res)
		case <-r.retry:
			r.retry = nil
			r.rescan()
			r.settleDeferred()
			r.publish()
		case <-periodic.C:
			r.rescan()
			r.rebuild()
		case <-syncDeadline.C:
			markSynced()
		}
	}
}

func (r *Resolver) allSynced() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.sources {
		if !r.syncedSrcs[s.Name()] {
			return false
		}
	}
	return true
}

// rescan walks the cgroup tree and replaces the index.
func (r *Resolver) rescan() {
	r.lastRescan = time.Now()
	r.metrics.rescans.Inc()
	r.mu.Lock()
	checked := make(map[string]time.Time, len(r.checked))
	for _, pods := range r.state {
		for _, p := range pods {
			for _, c := range p.Containers {
				checked[c.ID] = c.StartTime
			}
		}
	}
	r.mu.Unlock()
	r.checked = checked
	paths := make(map[uint64]cgEntry, len(r.paths))
	err := cgroup.Walk(r.cgroupRoot, func(p string, id uint64) {
		if e, ok := r.paths[id]; ok && e.path == p {
			paths[id] = e
			return
		}
		paths[id] = cgEntry{path: p, info: cgroup.Parse(p)}
	})
	if err != nil {
		if r.walkErr == nil || err.Error() != r.walkErr.Error() {
			r.log.WithError(err).Warn("cannot walk the cgroup tree; pods are resolved only for cgroups found one by one")
		}
		r.walkErr = err
		// Keep what we had: a partial walk must not forget cgroups.
		for id, p := range r.paths {
			if _, ok := paths[id]; !ok {
				paths[id] = p
			}
		}
	} else {
		r.walkErr = nil
	}
	r.paths = paths
	now := time.Now()
	for id, at := range r.gone {
		if _, ok := paths[id]; ok || now.Sub(at) > goneKeep {
			delete(r.gone, id)
		}
	}
	r.metrics.cgroups.Set(float64(len(paths)))
}

// needsRescan tells whether the sources report a container (or a start of
// one) that no walk looked for yet, and a walk is allowed: its cgroup is
// then indexed before its first process is seen.
func (r *Resolver) needsRescan() bool {
	if time.Since(r.lastRescan) < minRescan {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, pods := range r.state {
		for _, p := range pods {
			for _, c := range p.Containers {
				if at, ok := r.checked[c.ID]; !ok || !at.Equal(c.StartTime) {
					return true
				}
			}
		}
	}
	return false
}

// rebuild merges the sources, resolves every indexed cgroup, publishes the
// new map and reports what changed.
func (r *Resolver) rebuild() {
	r.metrics.rebuilds.Inc()
	r.mu.Lock()
	r.view, r.podCache = buildView(r.state, r.podCache)
	r.mu.Unlock()
	r.metrics.pods.Set(float64(len(r.view.pods)))
	r.dropRemoved()
	r.publish()
}

// dropRemoved forgets the cgroups of containers the sources no longer
// report when the cgroup is gone too: a removed container's entries go
// now, not at the next walk.
func (r *Resolver) dropRemoved() {
	old := *r.hot.Load()
	for id, e := range r.paths {
		c := e.info.ContainerID
		if c == "" || old[id].pod == nil || r.view.byContainer[c] != nil || r.view.bySandbox[c] != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(r.cgroupRoot, e.path)); errors.Is(err, fs.ErrNotExist) {
			delete(r.paths, id)
		}
	}
}

// publish resolves every indexed cgroup against the current view, swaps the
// hot map and calls the callbacks for what changed.
func (r *Resolver) publish() {
	old := *r.hot.Load()
	next := make(map[uint64]slot, len(r.paths)+len(r.gone))
	cgroupsOf := map[*merged][]uint64{}
	now := time.Now()
	pending := 0
	for id, e := range r.paths {
		res := r.view.resolve(e.path, e.info.ContainerID, e.info.PodUID)
		s := slot{pod: res.pod}
		if res.m != nil {
			cgroupsOf[res.m] = append(cgroupsOf[res.m], id)
		}
		if res.pod == nil && res.containerID != "" {
			if at, ok := r.notFound[res.containerID]; !ok || now.Sub(at) > notFoundRetry {
				s.pending = true
				pending++
				r.queueLookup(res.containerID)
			}
		}
		next[id] = s
	}
	for id := range r.gone {
		next[id] = slot{}
	}
	r.hot.Store(&next)
	r.metrics.pending.Set(float64(pending))

	// Report changes: a different pod, a pending cgroup settled, or a
	// cgroup with a pod gone. A cgroup the caller asked about (and was
	// told pending) is reported once settled even without a pod.
	var changes []change
	for id, s := range next {
		o, had := old[id]
		switch {
		case had && o.pod == s.pod && o.pending == s.pending:
		case s.pending:
		case had && (o.pod != s.pod || o.pending):
			changes = append(changes, change{id, s.pod})
		case !had && (s.pod != nil || r.asked[id]):
			changes = append(changes, change{id, s.pod})
		}
		if !s.pending {
			delete(r.asked, id)
		}
	}
	for id, o := range old {
		if _, ok := next[id]; !ok && (o.pod != nil || o.pending) {
			changes = append(changes, change{id, nil})
		}
	}
	wlChanged := r.publishWorkloads(cgroupsOf)
	r.notify(changes)
	if wlChanged {
		r.cbMu.Lock()
		cbs := slices.Clone(r.wlChanged)
		r.cbMu.Unlock()
		for _, f := range cbs {
			f()
		}
	}
}

type change struct {
	id  uint64
	pod *event.Pod
}

func (r *Resolver) notify(changes []change) {
	if len(changes) == 0 {
		return
	}
	slices.SortFunc(changes, func(a, b change) int {
		switch {
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	})
	r.cbMu.Lock()
	cbs := slices.Clone(r.callbacks)
	r.cbMu.Unlock()
	for _, c := range changes {
		for _, f := range cbs {
			f(c.id, c.pod)
		}
	}
}

// publishWorkloads stores the list Workloads returns and reports whether it
// differs from the previous one.
func (r *Resolver) publishWorkloads(cgroupsOf map[*merged][]uint64) bool {
	out := make([]Workload, 0, len(r.view.pods))
	for _, m := range r.view.pods {
		ids := cgroupsOf[m]
		slices.Sort(ids)
		out = append(out, Workload{
			Pod: m.pod, CgroupIDs: ids, IPs: m.ips,
			NamespaceLabels: m.nsLabels, ServiceAccount: m.sa, Ports: m.ports,
		})
	}
	old := r.workloads.Load()
	r.workloads.Store(&out)
	return old == nil || !reflect.DeepEqual(*old, out)
}

// handleMisses resolves cgroup ids the hot path did not know: one by one
// with open_by_handle_at, else with a walk of the tree.
func (r *Resolver) handleMisses(first uint64) {
	ids := []uint64{first}
	for len(ids) < missQueue {
		select {
		case id := <-r.misses:
			ids = append(ids, id)
			continue
		default:
		}
		break
	}
	cur := *r.hot.Load()
	var unresolved []uint64
	added := false
	for _, id := range ids {
		if _, ok := cur[id]; ok {
			continue
		}
		if _, ok := r.paths[id]; ok || r.deferred[id] {
			continue
		}
		r.asked[id] = true
		p, err := r.pathOf(id)
		switch {
		case err == nil:
			e := cgEntry{path: p, info: cgroup.Parse(p)}
			r.paths[id] = e
			added = true
			r.countMiss(id, e)
		case errors.Is(err, fs.ErrNotExist):
			r.gone[id] = time.Now()
			added = true
			r.metrics.misses.WithLabelValues("gone").Inc()
		default:
			unresolved = append(unresolved, id)
		}
	}
	for _, id := range unresolved {
		r.deferred[id] = true
	}
	if len(r.deferred) > 0 {
		if wait := minRescan - time.Since(r.lastRescan); wait > 0 {
			// Walks are rate-limited: these ids wait for the next one.
			if r.retry == nil {
				r.retry = time.After(wait)
			}
		} else {
			r.rescan()
			r.settleDeferred()
			added = true
		}
	}
	if added {
		r.publish()
	}
}

// settleDeferred classifies the misses that waited for a walk: found, or
// gone.
func (r *Resolver) settleDeferred() {
	now := time.Now()
	for id := range r.deferred {
		if e, ok := r.paths[id]; ok {
			r.countMiss(id, e)
		} else {
			r.gone[id] = now
			r.metrics.misses.WithLabelValues("gone").Inc()
		}
	}
	clear(r.deferred)
}

func (r *Resolver) pathOf(id uint64) (string, error) {
	if r.opener == nil {
		return "", errors.New("no cgroup2 mount descriptor")
	}
	p, err := r.opener.Path(id)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		r.rlog.info(r.log.WithError(err), "open-by-handle", "cannot resolve a cgroup id by handle (CAP_DAC_READ_SEARCH missing?); walking the tree instead")
	}
	return p, err
}

// countMiss classifies a newly found cgroup, and says so when a path that
// looks like Kubernetes' names no container.
func (r *Resolver) countMiss(id uint64, e cgEntry) {
	info, path := e.info, e.path
	if info.ContainerID != "" {
		r.metrics.misses.WithLabelValues("container").Inc()
		return
	}
	r.metrics.misses.WithLabelValues("no_container").Inc()
	if info.PodUID == "" && strings.Contains(path, "kubepods") {
		r.rlog.info(r.log.WithFields(logrus.Fields{fieldCgroup: path, fieldCgroupID: id}), "no-container",
			"cgroup below kubepods names no container or pod; its processes get no pod")
	}
}

func (r *Resolver) queueLookup(containerID string) {
	if r.inflight[containerID] || len(r.lookers) == 0 {
		if len(r.lookers) == 0 {
			r.notFound[containerID] = time.Now()
		}
		return
	}
	select {
	case r.lookupQ <- containerID:
		r.inflight[containerID] = true
	default:
		// Full: the next publish tries again.
	}
}

func (r *Resolver) lookupWorker(ctx context.Context, lim *rate.Limiter) {
	for {
		var id string
		select {
		case <-ctx.Done():
			return
		case id = <-r.lookupQ:
		}
		if err := lim.Wait(ctx); err != nil {
			return
		}
		res := lookupResult{containerID: id, err: source.ErrNotFound}
		for _, nl := range r.lookers {
			cctx, cancel := context.WithTimeout(ctx, max(r.cfg.CRITimeout, time.Second))
			pod, err := nl.l.Lookup(cctx, id)
			cancel()
			if err == nil {
				res = lookupResult{containerID: id, source: nl.name, pod: pod}
				break
			}
			if !errors.Is(err, source.ErrNotFound) {
				res.err = err
				res.source = nl.name
			}
		}
		select {
		case r.results <- res:
		case <-ctx.Done():
			return
		}
	}
}

func (r *Resolver) handleLookup(res lookupResult) {
	delete(r.inflight, res.containerID)
	switch {
	case res.err == nil:
		r.metrics.lookups.WithLabelValues("found").Inc()
		delete(r.notFound, res.containerID)
		r.mu.Lock()
		if r.state[res.source] == nil {
			r.state[res.source] = map[string]source.Pod{}
		}
		r.state[res.source][res.pod.Key] = res.pod
		r.mu.Unlock()
		r.rebuild()
		return
	case errors.Is(res.err, source.ErrNotFound):
		r.metrics.lookups.WithLabelValues("not_found").Inc()
		r.rlog.info(r.log.WithField(fieldContainer, res.containerID), "lookup-not-found",
			"container of a running process is unknown to every runtime source; its processes get no pod until a source reports it")
	default:
		r.metrics.lookups.WithLabelValues("error").Inc()
		r.metrics.sourceErrors.WithLabelValues(res.source, "lookup").Inc()
		r.rlog.warn(r.log.WithError(res.err).WithFields(logrus.Fields{fieldSource: res.source, fieldContainer: res.containerID}),
			res.source+"/lookup", "container lookup failed")
	}
	r.notFound[res.containerID] = time.Now()
	for id, at := range r.notFound {
		if time.Since(at) > 10*notFoundRetry {
			delete(r.notFound, id)
		}
	}
	r.publish()
}

// sink receives the sources' reports.
type sink struct{ r *Resolver }

var _ source.Sink = (*sink)(nil)

func (s *sink) changed() {
	select {
	case s.r.kick <- struct{}{}:
	default:
	}
}

func (s *sink) Replace(name string, pods []source.Pod) {
	m := make(map[string]source.Pod, len(pods))
	for _, p := range pods {
		m[p.Key] = p
	}
	s.r.mu.Lock()
	s.r.state[name] = m
	s.r.mu.Unlock()
	s.changed()
}

func (s *sink) Upsert(name string, p source.Pod) {
	s.r.mu.Lock()
	if s.r.state[name] == nil {
		s.r.state[name] = map[string]source.Pod{}
	}
	s.r.state[name][p.Key] = p
	s.r.mu.Unlock()
	s.changed()
}

func (s *sink) Delete(name, key string) {
	s.r.mu.Lock()
	delete(s.r.state[name], key)
	s.r.mu.Unlock()
	s.changed()
}

func (s *sink) Synced(name string) {
	s.r.mu.Lock()
	s.r.syncedSrcs[name] = true
	s.r.mu.Unlock()
	s.changed()
}

func (s *sink) Failed(name, op string, err error) {
	s.r.mu.Lock()
	s.r.down[name] = true
	s.r.mu.Unlock()
	s.r.metrics.sourceErrors.WithLabelValues(name, op).Inc()
	s.r.metrics.sourceUp.WithLabelValues(name).Set(0)
	s.r.rlog.warn(s.r.log.WithError(err).WithFields(logrus.Fields{fieldSource: name, fieldOp: op}), name+"/"+op,
		"metadata source failed; retrying, events meanwhile lack what it would add")
}

func (s *sink) Recovered(name string) {
	s.r.mu.Lock()
	was := s.r.down[name]
	delete(s.r.down, name)
	s.r.mu.Unlock()
	s.r.metrics.sourceUp.WithLabelValues(name).Set(1)
	if was {
		s.r.log.WithField(fieldSource, name).Info("metadata source works again")
	}
}

func cgEntryOf(p string) cgEntry { return cgEntry{path: p, info: cgroup.Parse(p)} }

func discard() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}
