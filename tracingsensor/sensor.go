package tracingsensor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/kprobes"
	"github.com/vigilsec/vigil/kprobes/abi"
	"github.com/vigilsec/vigil/process"
	"github.com/vigilsec/vigil/tracingpolicies"
)

// Sensor loads tracing policies and decodes their records.
type Sensor struct {
	gen   *generic
	procs *process.Sensor
	cache *process.Cache
	sink  process.Sink
	log   logrus.FieldLogger
	kinfo *tracingpolicies.KernelInfo
	// pinDir is where policies' links are pinned ("": nowhere).
	pinDir string

	mu       sync.Mutex // serialises Load, Unload, SetMode, scopes
	ids      *allocator
	policies map[string]*Policy
	scoper   Scoper

	// hooks maps hook ids to what they mean. Copy on write: the decoder
	// reads it without locking.
	hooks atomic.Pointer[map[uint32]*hookInfo]

	dec decoder
	// unknown counts records whose hook id is not registered.
	unknown atomic.Uint64

	// folds are the runs of identical calls the kernel folds (folds.go);
	// foldOut is where their reports go while RunFolds runs.
	foldMu  sync.Mutex
	folds   *folds
	foldOut atomic.Pointer[process.Sink]
}

// Config configures a Sensor.
type Config struct {
	// Tracefs is where tracefs is mounted (for tracepoint formats).
	Tracefs string
	// ProcRoot is where /proc is mounted (for host namespaces and the
	// agent's parents).
	ProcRoot string
	// Protect is what policies do not act on unless they name it exactly.
	Protect Protection
	// Generation is this agent run's number: only the programs of the
	// generation written in the Active map act, so that a restarted agent
	// takes over the pinned programs of the last one in one map write.
	Generation uint32
	// Active is the map (gen_active) naming the generation that acts,
	// shared with the programs being taken over; nil: a map of the
	// sensor's own, naming Generation.
	Active *ebpf.Map
	// PinDir, when set, is a directory on a BPF file system where each
	// policy's links are pinned (a directory per policy), so that they
	// keep enforcing after the agent exits. Unload and Replace remove the
	// pins of what they unload; Close leaves every pinned policy in force.
	PinDir string
}

// New creates the tracing-policy maps next to the process sensor's (one
// ring buffer, one process table), tracks follow bits in the process
// sensor's table, and sends events to sink. Close releases the maps.
func New(cfg Config, procs *process.Sensor, feats *kprobes.Features, cache *process.Cache, sink process.Sink, log logrus.FieldLogger) (*Sensor, error) {
	gen, err := newGeneric(procs, feats, cfg.Protect.AgentPID, cfg.Generation, cfg.Active)
	if err != nil {
		return nil, err
	}
	if err := gen.protect(cfg.ProcRoot, cfg.Protect); err != nil {
		gen.close()
		return nil, fmt.Errorf("protected processes: %w", err)
	}
	s := &Sensor{
		gen: gen, procs: procs, cache: cache, sink: sink, log: log, pinDir: cfg.PinDir,
		ids:      newAllocator(),
		policies: map[string]*Policy{},
		folds:    newFolds(),
	}
	s.kinfo = &tracingpolicies.KernelInfo{
		TracepointFields: func(sub, ev string) ([]kprobes.TracepointField, error) {
			return kprobes.TracepointFormat(cfg.Tracefs, sub, ev)
		},
		HostNamespace: func(ns tracingpolicies.NamespaceType) (uint32, error) {
			return hostNamespace(cfg.ProcRoot, ns)
		},
	}
	empty := map[uint32]*hookInfo{}
	s.hooks.Store(&empty)
	s.dec.s = s
	return s, nil
}

// State is a loaded policy's state as `vigil policy list` shows it.
type State string

const (
	StateLoaded State = "loaded"
	StateError  State = "error"
)

// Policy is one loaded policy.
type Policy struct {
	Name      string
	Namespace string
	// Source is the file (or "embedded:NAME") the policy came from.
	Source   string
	LoadedAt time.Time

	compiled    *tracingpolicies.Compiled
	attachments []*attachment
	hookIDs     []uint32
	mode        atomic.Value // tracingpolicies.Mode
	events      atomic.Uint64
	sensor      *Sensor
	// scope is the set of cgroups written for a scoped policy.
	scope map[uint64]bool
}

// Key identifies a policy: namespace/name, or name for cluster-wide ones.
func Key(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}

// Key returns the policy's key.
func (p *Policy) Key() string { return Key(p.Namespace, p.Name) }

// pinDir is the directory of the policy's pinned links: its id (unique
// while it is loaded, so that Replace pins the new version beside the old)
// and its key, readable by people listing the directory.
func (p *Policy) pinDir() string {
	return filepath.Join(p.sensor.pinDir, fmt.Sprintf("%d-%s", p.compiled.PolicyID, strings.ReplaceAll(p.Key(), "/", "_")))
}

// Mode returns the policy's current mode.
func (p *Policy) Mode() tracingpolicies.Mode { return p.mode.Load().(tracingpolicies.Mode) }

// Events returns how many events the policy produced.
func (p *Policy) Events() uint64 { return p.events.Load() }

// Spec returns the policy as parsed.
func (p *Policy) Spec() *tracingpolicies.Policy { return p.compiled.Policy }

// HookStatus describes one attached hook of a policy.
type HookStatus struct {
	Kind      string            `json:"kind"`
	Target    string            `json:"target"`
	Mechanism kprobes.Mechanism `json:"mechanism"`
	Matched   uint64            `json:"matched"`
	Limited   uint64            `json:"rate_limited"`
	// Folded counts calls folded into a repeat of an event already
	// reported (repeated-events fold or rate-limit); FoldFull calls that
	// were reported on their own because the kernel's table of folds was
	// full.
	Folded   uint64 `json:"folded"`
	FoldFull uint64 `json:"fold_table_full"`
	// Protected counts Sigkill, Signal and Override actions not taken
	// because the process was protected (the agent, its parents, PID 1, a
	// protected binary or a kernel thread).
	Protected uint64 `json:"protected_skipped"`
}

// Hooks returns the policy's hooks with their mechanisms and counters.
func (p *Policy) Hooks() []HookStatus {
	infos := *p.sensor.hooks.Load()
	var out []HookStatus
	for _, id := range p.hookIDs {
		h := infos[id]
		if h == nil {
			continue
		}
		st := HookStatus{Kind: string(h.hook.Kind), Target: h.target, Mechanism: h.mechanism}
		var per []abi.GenHookStats
		if err := p.sensor.gen.Map("gen_stats").Lookup(id, &per); err == nil {
			for _, c := range per {
				st.Matched += c.Matched
				st.Limited += c.RateLimited
				st.Folded += c.Folded
				st.FoldFull += c.FoldFull
				st.Protected += c.Protected
			}
		}
		out = append(out, st)
	}
	return out
}

// Policies returns the loaded policies sorted by key.
func (s *Sensor) Policies() []*Policy {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Policy, 0, len(s.policies))
	for _, p := range s.policies {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out
}

// Get returns the loaded policy with the given key.
func (s *Sensor) Get(key string) *Policy {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.policies[key]
}

// Load compiles, writes and attaches a policy. A policy with the same key
// must not be loaded (use Replace). On failure nothing of the policy stays
// in the kernel.
func (s *Sensor) Load(tp *tracingpolicies.Policy, source string) (*Policy, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := Key(tp.Namespace, tp.Name)
	if old, ok := s.policies[key]; ok {
		return nil, fmt.Errorf("policy %s is already loaded from %s", key, old.Source)
	}
	p, err := s.load(tp, source)
	if err != nil {
		return nil, err
	}
	s.policies[key] = p
	return p, nil
}

// Replace loads tp and then unloads the loaded policy with the same key, so
// that there is no moment without the policy. When tp fails to load, the
// old version keeps running and the error is returned.
func (s *Sensor) Replace(tp *tracingpolicies.Policy, source string) (*Policy, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := Key(tp.Namespace, tp.Name)
	p, err := s.load(tp, source)
	if err != nil {
		return nil, err
	}
	if old, ok := s.policies[key]; ok {
		s.unload(old)
	}
	s.policies[key] = p
	return p, nil
}

// Unload detaches a policy and removes everything it wrote.
func (s *Sensor) Unload(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.policies[key]
	if !ok {
		return fmt.Errorf("policy %s is not loaded", key)
	}
	s.unload(p)
	delete(s.policies, key)
	return nil
}

// Close unloads every policy; pinned policies (Config.PinDir) stay
// attached, with everything they read in the maps, until their pins are
// removed.
func (s *Sensor) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for k, p := range s.policies {
		if s.pinDir != "" {
			for _, a := range p.attachments {
				errs = append(errs, a.release())
			}
		} else {
			s.unload(p)
		}
		delete(s.policies, k)
	}
	s.gen.close()
	return errors.Join(errs...)
}

// SetMode switches a loaded policy between enforce and monitor, live: the
// programs read the mode on every call.
func (s *Sensor) SetMode(key string, mode tracingpolicies.Mode) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.policies[key]
	if !ok {
		return fmt.Errorf("policy %s is not loaded", key)
	}
	st := p.compiled.State
	switch mode {
	case tracingpolicies.ModeEnforce:
		st.Mode = uint8(abi.GenericGenPolicyModeGEN_MODE_ENFORCE)
	case tracingpolicies.ModeMonitor:
		st.Mode = uint8(abi.GenericGenPolicyModeGEN_MODE_MONITOR)
	default:
		return fmt.Errorf("unknown mode %q (want enforce or monitor)", mode)
	}
	if err := s.gen.Map("gen_policies").Put(p.compiled.PolicyID, st); err != nil {
		return fmt.Errorf("set mode of %s: %w", key, err)
	}
	p.compiled.State = st
	p.mode.Store(mode)
	return nil
}

// rollback collects the undo steps of a load in progress.
type rollback []func()

func (r *rollback) add(f func()) { *r = append(*r, f) }

func (r rollback) run() {
	for i := len(r) - 1; i >= 0; i-- {
		r[i]()
	}
}

func (s *Sensor) load(tp *tracingpolicies.Policy, source string) (_ *Policy, err error) {
	defer s.gen.dropSpec()
	var undo rollback
	defer func() {
		if err != nil {
			undo.run()
		}
	}()

	pid, err := s.ids.policyID()
	if err != nil {
		return nil, err
	}
	undo.add(func() { s.ids.freePolicy(pid) })
	ids := &compileIDs{a: s.ids}
	undo.add(ids.release)

	c, err := tracingpolicies.Compile(tp, pid, ids, s.kinfo)
	if err != nil {
		return nil, err
	}

	m := s.gen.Map
	if err := putAll(m("gen_int_sets"), c.IntSets, &undo); err != nil {
		return nil, fmt.Errorf("write value sets: %w", err)
	}
	if err := putAll(m("gen_str_sets"), c.StrSets, &undo); err != nil {
		return nil, fmt.Errorf("write string sets: %w", err)
	}
	if err := putAll(m(abi.GenericMapGenStrHeads), c.StrHeads, &undo); err != nil {
		return nil, fmt.Errorf("write string heads: %w", err)
	}
	if err := putAll(m("gen_addr_sets"), c.AddrSets, &undo); err != nil {
		return nil, fmt.Errorf("write address sets: %w", err)
	}
	if err := putAll(m("gen_port_sets"), c.PortSets, &undo); err != nil {
		return nil, fmt.Errorf("write port sets: %w", err)
	}
	if err := m("gen_policies").Put(pid, c.State); err != nil {
		return nil, fmt.Errorf("write policy state: %w", err)
	}
	undo.add(func() { m("gen_policies").Put(pid, abi.GenPolicy{}) })

	p := &Policy{Name: tp.Name, Namespace: tp.Namespace, Source: source, LoadedAt: time.Now(), compiled: c, sensor: s}
	p.mode.Store(tp.Mode)
	infos := map[uint32]*hookInfo{}
	// A scoped policy knows its cgroups before its programs run.
	if err := s.applyScope(p); err != nil {
		return nil, fmt.Errorf("write policy scope: %w", err)
	}
	undo.add(func() { s.clearScope(p) })
	if s.pinDir != "" {
		undo.add(func() { os.Remove(p.pinDir()) })
	}

	for _, h := range c.Hooks {
		mech, flags, err := s.gen.planHook(h)
		if err != nil {
			return nil, tp.Doc.Errorf(h.Source.Path, "%v", err)
		}
		for i, t := range h.Request.Targets {
			for si, sel := range h.Selectors {
				key := t.ID*abi.GenMaxSelectors + uint32(si)
				if err := m("gen_selectors").Put(key, sel); err != nil {
					return nil, fmt.Errorf("write selector: %w", err)
				}
			}
			for pos, r := range h.Resolves {
				if err := m(abi.GenericMapGenResolves).Put(t.ID*uint32(abi.GenMaxArgs)+uint32(pos), r); err != nil {
					return nil, fmt.Errorf("write resolve path: %w", err)
				}
			}
			cfg := h.Configs[i]
			cfg.Flags |= flags
			if err := m("gen_hooks").Put(t.ID, cfg); err != nil {
				return nil, fmt.Errorf("write hook: %w", err)
			}
			id := t.ID
			undo.add(func() { m("gen_hooks").Put(id, abi.GenHook{}) })
			infos[t.ID] = newHookInfo(p, h, t, mech)
			p.hookIDs = append(p.hookIDs, t.ID)
		}
		a, err := s.gen.attachHook(h)
		if err != nil {
			return nil, tp.Doc.Errorf(h.Source.Path, "%v", err)
		}
		undo.add(func() { a.Close() })
		p.attachments = append(p.attachments, a)
		if s.pinDir != "" {
			if err := a.pin(p.pinDir(), fmt.Sprintf("hook%d", len(p.attachments)-1)); err != nil {
				return nil, fmt.Errorf("keep enforcement on exit: %w", err)
			}
		}
	}

	if err := s.applyFollow(c, true); err != nil {
		return nil, err
	}
	s.register(infos)
	return p, nil
}

// putAll inserts every key of a set with value 1, and registers their
// removal.
func putAll[K any](m *ebpf.Map, keys []K, undo *rollback) error {
	one := uint8(1)
	for i := range keys {
		if err := m.Put(keys[i], one); err != nil {
			return err
		}
		k := keys[i]
		undo.add(func() { m.Delete(k) })
	}
	return nil
}

func deleteAll[K any](m *ebpf.Map, keys []K) {
	for i := range keys {
		m.Delete(keys[i])
	}
}

func (s *Sensor) unload(p *Policy) {
	// Detach first: from here on the kernel produces no record for it.
	for _, a := range p.attachments {
		if err := a.Close(); err != nil {
			s.log.WithError(err).WithField("policy", p.Key()).Warn("detach hook")
		}
	}
	if s.pinDir != "" {
		os.Remove(p.pinDir())
	}
	// What the kernel folded for it is reported before its hooks are gone.
	s.flushFolds(p.hookIDs)
	c := p.compiled
	m := s.gen.Map
	for _, id := range p.hookIDs {
		m("gen_hooks").Put(id, abi.GenHook{})
		for si := uint32(0); si < abi.GenMaxSelectors; si++ {
			m("gen_selectors").Put(id*abi.GenMaxSelectors+si, abi.GenSelector{})
		}
		m("gen_stats").Put(id, make([]abi.GenHookStats, ebpfPossibleCPUs()))
		for pos := uint32(0); pos < uint32(abi.GenMaxArgs); pos++ {
			m(abi.GenericMapGenResolves).Put(id*uint32(abi.GenMaxArgs)+pos, abi.GenResolve{})
		}
		s.ids.freeHook(id)
	}
	deleteAll(m("gen_int_sets"), c.IntSets)
	deleteAll(m("gen_str_sets"), c.StrSets)
	deleteAll(m(abi.GenericMapGenStrHeads), c.StrHeads)
	deleteAll(m("gen_addr_sets"), c.AddrSets)
	deleteAll(m("gen_port_sets"), c.PortSets)
	s.clearScope(p)
	m("gen_policies").Put(c.PolicyID, abi.GenPolicy{})
	s.ids.freePolicy(c.PolicyID)
	if err := s.applyFollow(c, false); err != nil {
		s.log.WithError(err).WithField("policy", p.Key()).Warn("clear follow bits")
	}
	for _, b := range c.FollowBits {
		s.ids.freeFollowBit(b)
	}
	// Hook infos stay registered while their ids are in quarantine, so
	// that records still in the ring buffer decode.
	for _, id := range p.hookIDs {
		if h := (*s.hooks.Load())[id]; h != nil {
			h.unloaded.Store(true)
		}
	}
}

func (s *Sensor) register(add map[uint32]*hookInfo) {
	cur := *s.hooks.Load()
	next := make(map[uint32]*hookInfo, len(cur)+len(add))
	for k, v := range cur {
		next[k] = v
	}
	for k, v := range add {
		next[k] = v
	}
	s.hooks.Store(&next)
}

// applyFollow sets (or clears) the follow bits of a policy: for the
// binaries it follows, in the process sensor's table of followed binaries
// and on running processes that run them or descend from one; for the pids
// it follows, on those processes and their descendants.
func (s *Sensor) applyFollow(c *tracingpolicies.Compiled, set bool) error {
	if len(c.FollowBinaries) == 0 && len(c.FollowPIDs) == 0 {
		return nil
	}
	fb := s.procs.FollowBinaries()
	for path, bits := range c.FollowBinaries {
		key := process.BinaryKey(path)
		var cur uint64
		fb.Lookup(key, &cur)
		if set {
			cur |= bits
		} else {
			cur &^= bits
		}
		var err error
		if cur == 0 {
			err = fb.Delete(key)
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				err = nil
			}
		} else {
			err = fb.Put(key, cur)
		}
		if err != nil {
			return fmt.Errorf("followed binaries: %w", err)
		}
	}
	// Running processes: a process gets the bits of its binary and of its
	// pid, and inherits its parent's.
	var all uint64
	for _, b := range c.FollowBits {
		all |= 1 << b
	}
	return s.procs.UpdateFollowMasks(func(pid, ppid uint32, binary string, parentMask uint64) (uint64, uint64) {
		if !set {
			return 0, all
		}
		add := c.FollowBinaries[binary] | c.FollowPIDs[pid] | (parentMask & all)
		return add, 0
	})
}

// Unknown returns how many records named a hook id that is not registered.
func (s *Sensor) Unknown() uint64 { return s.unknown.Load() }

// Scoper returns the cgroups a scoped policy (podSelector,
// containerSelector, or a TracingPolicyNamespaced) applies to.
type Scoper func(p *tracingpolicies.Policy) []uint64

// SetScoper sets how scoped policies find their cgroups, and applies it to
// the loaded ones.
func (s *Sensor) SetScoper(f Scoper) error {
	s.mu.Lock()
	s.scoper = f
	s.mu.Unlock()
	return s.RefreshScopes()
}

// RefreshScopes brings the cgroup sets of every scoped policy up to date,
// after pods came or went. A call from a pod outside a policy's scope costs
// the program one map lookup and is not reported.
func (s *Sensor) RefreshScopes() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, p := range s.policies {
		if err := s.applyScope(p); err != nil {
			errs = append(errs, fmt.Errorf("policy %s: %w", p.Key(), err))
		}
	}
	return errors.Join(errs...)
}

// applyScope writes the difference between a policy's current and wanted
// cgroup sets. Callers hold mu.
func (s *Sensor) applyScope(p *Policy) error {
	if p.compiled.State.Scoped == 0 || s.scoper == nil {
		return nil
	}
	want := map[uint64]bool{}
	for _, id := range s.scoper(p.compiled.Policy) {
		want[id] = true
	}
	m := s.gen.Map("gen_policy_cgroups")
	one := uint8(1)
	for id := range want {
		if p.scope[id] {
			continue
		}
		if err := m.Put(abi.GenScopeKey{PolicyId: p.compiled.PolicyID, CgroupId: id}, one); err != nil {
			return err
		}
	}
	for id := range p.scope {
		if !want[id] {
			m.Delete(abi.GenScopeKey{PolicyId: p.compiled.PolicyID, CgroupId: id})
		}
	}
	p.scope = want
	return nil
}

// clearScope removes a policy's cgroup set. Callers hold mu.
func (s *Sensor) clearScope(p *Policy) {
	m := s.gen.Map("gen_policy_cgroups")
	for id := range p.scope {
		m.Delete(abi.GenScopeKey{PolicyId: p.compiled.PolicyID, CgroupId: id})
	}
	p.scope = nil
}
