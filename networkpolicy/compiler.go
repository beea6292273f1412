package networkpolicy

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
)

// Compiler compiles resources into engines, again and again: each Update
// compiles only what the change touches (the identities of pods that came,
// went or changed; the rules of policies that changed; the local identities
// either selects) and says which datapath entries may differ (Delta). A
// fresh compile is an update from nothing, so both cannot disagree.
//
// Identity and rule numbers come from the compiler's allocator and are
// stable for its life. A Compiler is not safe for concurrent use; the
// engines it returns are immutable and safe.
type Compiler struct {
	alloc *Allocator
	eng   *Engine

	// What policies refer to; a change of it recompiles everything.
	refs policyRefs
	// polRefs are the references of each policy.
	polRefs map[*Policy]*policyRefs
	// static are the ipcache entries that do not depend on pods or on the
	// node: the world and loopback ranges and the policies' CIDRs.
	static  map[netip.Prefix]uint32
	hostIPs map[netip.Prefix]bool
	// nsLabels are the labels of each namespace a pod or a declaration
	// named (with kubernetes.io/metadata.name).
	nsLabels map[string]labels.Set

	pods map[string]*podState
	// ipPods are the pods holding each address.
	ipPods map[netip.Addr]map[string]struct{}

	identities map[uint32]*Identity
	// identRefs counts the pods using each label identity (reserved and
	// CIDR identities are not counted).
	identRefs map[uint32]int
	idx       *identityIndex
	// names classify DNS names into the identities of toFQDNs patterns.
	names *NameTable

	policies map[*Policy]*policyState
	// ruleOwners are the policies holding each rule number.
	ruleOwners map[uint32][]*policyState
	// remoteRules are the rules selecting each identity by name.
	remoteRules map[uint32]map[*compiledRule]struct{}
	// localSections are the sections selecting each local identity.
	localSections map[uint32]map[*compiledSection]struct{}
	ruleIdx       *reverseIndex[*compiledRule]
	sectionIdx    *reverseIndex[*compiledSection]
	serial        uint64
}

// podState is a pod as compiled: its endpoint and the identities it holds.
type podState struct {
	pod *Pod
	ep  *Endpoint
	// ids are the identities the pod counts in identRefs (its local
	// identity and those of its addresses), each once.
	ids []uint32
	// ipIDs are the identities of its addresses, by address.
	ipIDs map[netip.Addr]uint32
}

type policyState struct {
	pol      *Policy
	seq      int // position in Resources.Policies
	defaults [3]uint32
	sections []*compiledSection
	// refs are the policy's rules (default denies included) by number.
	refs map[uint32]RuleRef
}

type compiledSection struct {
	pol    *policyState
	sec    *Section
	rules  []*compiledRule
	locals map[uint32]struct{}
}

type compiledRule struct {
	sec    *compiledSection
	rule   *Rule
	id     uint32
	serial uint64
	// remotes are the identities the rule selects; nil for AnyPeer.
	remotes map[uint32]struct{}
}

// NewCompiler returns a compiler drawing numbers from alloc (nil: a fresh
// allocator).
func NewCompiler(alloc *Allocator) *Compiler {
	if alloc == nil {
		alloc = NewAllocator()
	}
	return &Compiler{alloc: alloc}
}

// Compile builds an engine from resources. Identities and rule numbers come
// from alloc (nil: a fresh allocator), so that compiling updated resources
// with the same allocator keeps numbers stable.
func Compile(res *Resources, alloc *Allocator) (*Engine, error) {
	e, _, err := NewCompiler(alloc).Update(res)
	return e, err
}

// Delta tells which datapath entries an Update may have changed. Entries
// it does not name are those of the previous engine.
type Delta struct {
	// All is set when every entry may have changed: the first update, or
	// one that changed what policies refer to (named ports, CIDRs).
	All bool
	// Locals are the local identities whose every entry may differ.
	Locals map[uint32]bool
	// Remotes are, per local identity, the remote identities whose entries
	// may differ (IdentityNone: the wildcard entries).
	Remotes map[uint32]map[uint32]bool
	// Removed are the local identities that are gone.
	Removed map[uint32]bool
	// IPCache are the prefixes whose identity may differ.
	IPCache map[netip.Prefix]bool
	// Identities are the identities that came, went or changed.
	Identities map[uint32]bool
	// RulesChanged is set when policies changed; RetiredRules are the
	// rules that are gone (a record may still name one).
	RulesChanged bool
	RetiredRules []RuleRef
}

func (d *Delta) markRemote(local, remote uint32) {
	m := d.Remotes[local]
	if m == nil {
		m = map[uint32]bool{}
		d.Remotes[local] = m
	}
	m[remote] = true
}

// Engine returns the engine of the last update (nil before the first).
func (c *Compiler) Engine() *Engine { return c.eng }

// reset forgets everything but the allocator.
func (c *Compiler) reset(refs policyRefs, names *NameTable) {
	*c = Compiler{alloc: c.alloc, refs: refs, polRefs: c.polRefs, names: names,
		static: map[netip.Prefix]uint32{}, hostIPs: map[netip.Prefix]bool{}, nsLabels: map[string]labels.Set{},
		pods: map[string]*podState{}, ipPods: map[netip.Addr]map[string]struct{}{},
		identities: map[uint32]*Identity{}, identRefs: map[uint32]int{}, idx: newIdentityIndex(),
		policies: map[*Policy]*policyState{}, ruleOwners: map[uint32][]*policyState{}, remoteRules: map[uint32]map[*compiledRule]struct{}{},
		localSections: map[uint32]map[*compiledSection]struct{}{},
		ruleIdx:       newReverseIndex[*compiledRule](), sectionIdx: newReverseIndex[*compiledSection](),
	}
	reserved := []*Identity{
		{ID: IdentityHost, Kind: KindReserved},
		{ID: IdentityWorldIPv4, Kind: KindReserved, Prefix: worldV4},
		{ID: IdentityWorldIPv6, Kind: KindReserved, Prefix: worldV6},
		{ID: IdentityLocalhost, Kind: KindReserved},
	}
	for _, id := range reserved {
		c.identities[id.ID] = id
		c.idx.add(id)
	}
	c.static[worldV4] = IdentityWorldIPv4
	c.static[worldV6] = IdentityWorldIPv6
	c.static[loopbackV4] = IdentityLocalhost
	c.static[loopbackV6] = IdentityLocalhost
	for _, p := range refs.cidrs {
		if p == worldV4 || p == worldV6 {
			continue
		}
		id := c.alloc.identity("cidr|"+p.String(), true)
		ident := &Identity{ID: id, Kind: KindCIDR, Prefix: p}
		c.identities[id] = ident
		c.idx.add(ident)
		c.static[p] = id
	}
	for i, set := range names.automaton().Sets {
		ident := &Identity{Kind: KindFQDN}
		for _, pi := range set {
			if names.fqdn[pi] {
				ident.Names = append(ident.Names, names.Patterns[pi].String())
			}
		}
		if len(ident.Names) == 0 {
			continue // only rules.dns patterns: no identity
		}
		ident.ID = c.alloc.identity("fqdn|"+strings.Join(ident.Names, ","), true)
		if _, ok := c.identities[ident.ID]; !ok {
			c.identities[ident.ID] = ident
			c.idx.add(ident)
		}
		names.SetIdentity[i] = ident.ID
	}
}

// update is the work of one Update.
type update struct {
	c     *Compiler
	delta *Delta
	// declared are the namespaces Resources declares.
	declared map[string]labels.Set
	// old are the identities that went or changed, as they were; added
	// those that came or changed (the new ones are in c.identities).
	old   map[uint32]*Identity
	added map[uint32]bool
	// renewed are the identities recreated because their namespace's
	// labels changed.
	renewed map[uint32]bool
	// rebuild are the local identities compiled afresh; patch, for the
	// others, the remote identities whose rule lists change.
	rebuild map[uint32]bool
	patch   map[uint32]map[uint32]bool
	// ipcache are the prefixes whose identity may change.
	ipcache map[netip.Prefix]bool
	// pods are the pods that came, went or changed.
	pods map[string]bool
	// touchedRules are the rule numbers of the policies removed or added.
	touchedRules map[uint32]bool
	// successors are the states passed from removed policies to the new
	// versions of them.
	successors map[*Policy]*policyState
}

// Update compiles res, touching only what differs from the previous
// update, and returns the new engine and what changed. On error the
// compiler is unchanged.
func (c *Compiler) Update(res *Resources) (*Engine, *Delta, error) {
	c.alloc.mu.Lock()
	defer c.alloc.mu.Unlock()
	keys := make([]string, len(res.Pods))
	next := make(map[string]*Pod, len(res.Pods))
	for i, p := range res.Pods {
		keys[i] = p.Key()
		if _, dup := next[keys[i]]; dup {
			return nil, nil, fmt.Errorf("networkpolicy: pod %s is listed twice", keys[i])
		}
		next[keys[i]] = p
	}
	refs := c.policyRefsOf(res.Policies)
	delta := &Delta{Locals: map[uint32]bool{}, Remotes: map[uint32]map[uint32]bool{}, Removed: map[uint32]bool{},
		IPCache: map[netip.Prefix]bool{}, Identities: map[uint32]bool{}}
	before, prev := c.eng, c.eng
	if prev == nil || !refs.equal(&c.refs) {
		names, err := compileNames(refs.fqdns, refs.dnsGroups, refs.dnsPats)
		if err != nil {
			return nil, nil, err
		}
		c.reset(refs, names)
		prev = nil
		delta.All = true
	}
	u := &update{c: c, delta: delta, old: map[uint32]*Identity{}, added: map[uint32]bool{}, renewed: map[uint32]bool{},
		rebuild: map[uint32]bool{}, patch: map[uint32]map[uint32]bool{}, ipcache: map[netip.Prefix]bool{},
		pods: map[string]bool{}, touchedRules: map[uint32]bool{}}
	if prev == nil {
		for p := range c.static {
			u.ipcache[p] = true
		}
	}
	u.setHostIPs(res.HostIPs)
	nsChanged := u.namespaces(res.Namespaces)
	u.setPods(res.Pods, keys, next, nsChanged)
	// Identities that went or changed leave the rules and sections that
	// named them; those that came or changed join the rules and sections
	// of the policies in force; changed policies are compiled against the
	// identities of this update.
	for id, ident := range u.old {
		u.dropIdentity(id, ident)
	}
	u.dropPolicies(res.Policies)
	for id := range u.added {
		u.addIdentity(c.identities[id])
	}
	u.addPolicies(res.Policies)
	e := u.engine(prev, res, keys)
	if prev == nil && before != nil {
		delta.RulesChanged = true
		for id, ref := range before.rules {
			if _, ok := e.rules[id]; !ok {
				delta.RetiredRules = append(delta.RetiredRules, ref)
			}
		}
	}
	c.eng = e
	return e, delta, nil
}

// markPatch notes that the rules of local naming remote changed.
func (u *update) markPatch(local, remote uint32) {
	m := u.patch[local]
	if m == nil {
		m = map[uint32]bool{}
		u.patch[local] = m
	}
	m[remote] = true
}

// isLocal reports whether an identity is the local identity of pods
// (rather than the identity of addresses in ipBlocks, or not a pod's).
func isLocal(ident *Identity) bool {
	return ident != nil && ident.Kind == KindPod && len(ident.inBlocks) == 0
}

// engine assembles the new engine, sharing what did not change with prev.
func (u *update) engine(prev *Engine, res *Resources, keys []string) *Engine {
	c := u.c
	e := &Engine{policies: res.Policies, names: c.names}
	idsChanged := len(u.old) > 0 || len(u.added) > 0
	if prev == nil || idsChanged {
		e.identities = maps.Clone(c.identities)
	} else {
		e.identities = prev.identities
	}
	for id := range u.old {
		u.delta.Identities[id] = true
	}
	for id := range u.added {
		u.delta.Identities[id] = true
	}

	switch {
	case prev == nil:
		e.pods = make(map[string]*Endpoint, len(c.pods))
		for k, ps := range c.pods {
			e.pods[k] = ps.ep
		}
	case len(u.pods) > 0:
		e.pods = maps.Clone(prev.pods)
		for k := range u.pods {
			if ps := c.pods[k]; ps != nil {
				e.pods[k] = ps.ep
			} else {
				delete(e.pods, k)
			}
		}
	default:
		e.pods = prev.pods
	}
	if prev != nil && slices.Equal(prev.podOrder, keys) {
		e.podOrder = prev.podOrder
	} else {
		e.podOrder = keys
	}

	e.ipcache = u.ipcacheOf(prev)
	e.rules = u.rulesOf(prev, res.Policies)
	e.local = u.localsOf(prev, e)
	return e
}

// rulesOf returns the rule references of the policies in force, patched
// with those of the policies this update removed or added. A number two
// policies of one name share names the later one's rule.
func (u *update) rulesOf(prev *Engine, pols []*Policy) map[uint32]RuleRef {
	c := u.c
	if prev != nil && len(u.touchedRules) == 0 {
		return prev.rules
	}
	var rules map[uint32]RuleRef
	if prev == nil {
		rules = map[uint32]RuleRef{}
		for _, pol := range pols {
			maps.Copy(rules, c.policies[pol].refs)
		}
		return rules
	}
	rules = maps.Clone(prev.rules)
	u.delta.RulesChanged = true
	for id := range u.touchedRules {
		var owner *policyState
		for _, ps := range c.ruleOwners[id] {
			if owner == nil || ps.seq > owner.seq {
				owner = ps
			}
		}
		if owner != nil {
			rules[id] = owner.refs[id]
			continue
		}
		if ref, ok := rules[id]; ok {
			u.delta.RetiredRules = append(u.delta.RetiredRules, ref)
			delete(rules, id)
		}
	}
	sort.Slice(u.delta.RetiredRules, func(i, j int) bool { return u.delta.RetiredRules[i].ID < u.delta.RetiredRules[j].ID })
	return rules
}

// sortedIDs returns the keys of a set in ascending order.
func sortedIDs[V any](m map[uint32]V) []uint32 {
	out := slices.Collect(maps.Keys(m))
	slices.Sort(out)
	return out
}
