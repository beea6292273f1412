package networkpolicy

import (
	"maps"
	"slices"
	"sort"
)

// localsOf returns the compiled rule sets of the local identities: those
// of prev, with the identities that went removed, those this update
// selects differently compiled afresh, and those whose rules name other
// identities now patched. It records in the delta what may differ.
func (u *update) localsOf(prev *Engine, e *Engine) map[uint32]*LocalPolicy {
	c := u.c
	var out map[uint32]*LocalPolicy
	switch {
	case prev == nil:
		out = map[uint32]*LocalPolicy{}
	case len(u.rebuild) == 0 && len(u.patch) == 0 && len(u.delta.Removed) == 0:
		out = prev.local
	default:
		out = maps.Clone(prev.local)
	}
	for id := range u.delta.Removed {
		delete(out, id)
	}
	for id := range u.rebuild {
		ident := c.identities[id]
		if !isLocal(ident) {
			continue
		}
		lp := u.buildLocal(ident)
		if prev != nil {
			u.diffLocal(out[id], lp)
		}
		out[id] = lp
	}
	for id, remotes := range u.patch {
		old := out[id]
		if u.rebuild[id] || old == nil || !isLocal(c.identities[id]) {
			continue
		}
		out[id] = u.patchLocal(old, remotes)
		for r := range remotes {
			u.delta.markRemote(id, r)
		}
	}
	// An identity coming or going changes the entries of the locals whose
	// rules for every peer name ports: they resolve against each remote.
	if prev != nil && len(u.delta.Identities) > 0 {
		for id, lp := range out {
			if !lp.namedAny || u.delta.Locals[id] {
				continue
			}
			for r := range u.delta.Identities {
				u.delta.markRemote(id, r)
			}
		}
	}
	return out
}

// buildLocal compiles the rule set of one local identity from the sections
// selecting it.
func (u *update) buildLocal(ident *Identity) *LocalPolicy {
	c := u.c
	lp := &LocalPolicy{Identity: ident.ID}
	var rules [3][]*irRule
	for cs := range c.localSections[ident.ID] {
		ps := cs.pol
		for _, d := range []Direction{Ingress, Egress} {
			if cs.sec.Isolates[d] {
				lp.dirs[d].isolating = appendIsolation(lp.dirs[d].isolating, isolation{id: ps.defaults[d], audit: ps.pol.Audit})
			}
		}
		for _, cr := range cs.rules {
			rules[cr.rule.Direction] = append(rules[cr.rule.Direction], newIRRule(cr, ident, u.c.names))
		}
	}
	for d := range lp.dirs {
		dp := &lp.dirs[d]
		sortRules(rules[d])
		dp.rules = rules[d]
		sort.Slice(dp.isolating, func(i, j int) bool { return dp.isolating[i].id < dp.isolating[j].id })
		dp.byRemote = map[uint32][]*irRule{}
		for _, r := range dp.rules {
			if r.any {
				dp.anyPeer = append(dp.anyPeer, r)
				if len(r.named) > 0 {
					lp.namedAny = true
				}
				continue
			}
			for id := range r.src.remotes {
				dp.byRemote[id] = append(dp.byRemote[id], r)
			}
		}
	}
	return lp
}

// newIRRule compiles a rule for one local identity: ingress named ports
// resolve against the local pods' ports, egress ones later against each
// remote's.
func newIRRule(cr *compiledRule, local *Identity, names *NameTable) *irRule {
	r := cr.rule
	ir := &irRule{id: cr.id, src: cr, deny: r.Deny, audit: cr.sec.pol.pol.Audit, any: r.AnyPeer, allPorts: len(r.Ports) == 0}
	for _, ps := range r.Ports {
		switch {
		case ps.Name == "":
			ir.ports = append(ir.ports, PortMatch{Proto: ps.Protocol, First: ps.First, Last: ps.Last, dns: names.groupMask(ps.DNS)})
		case r.Direction == Ingress:
			ir.ports = append(ir.ports, resolveNamed(ps, local)...)
		default:
			ir.named = append(ir.named, ps)
		}
	}
	return ir
}

// sortRules orders rules by number (a rule of one name in two policies of
// one name: in the order they were compiled).
func sortRules(rules []*irRule) {
	slices.SortFunc(rules, func(a, b *irRule) int {
		if a.id != b.id {
			if a.id < b.id {
				return -1
			}
			return 1
		}
		switch {
		case a.src.serial < b.src.serial:
			return -1
		case a.src.serial > b.src.serial:
			return 1
		}
		return 0
	})
}

// patchLocal returns a copy of lp whose lists of the rules naming each of
// remotes are those of the rules now naming it.
func (u *update) patchLocal(lp *LocalPolicy, remotes map[uint32]bool) *LocalPolicy {
	c := u.c
	out := *lp
	for d := range out.dirs {
		dp := &out.dirs[d]
		if len(dp.rules) == 0 {
			continue
		}
		cloned := false
		for r := range remotes {
			var list []*irRule
			for cr := range c.remoteRules[r] {
				if _, ok := cr.sec.locals[lp.Identity]; !ok || int(cr.rule.Direction) != d {
					continue
				}
				if ir := findRule(dp.rules, cr); ir != nil {
					list = append(list, ir)
				}
			}
			sortRules(list)
			if slices.Equal(list, dp.byRemote[r]) {
				continue
			}
			if !cloned {
				dp.byRemote = maps.Clone(dp.byRemote)
				cloned = true
			}
			if len(list) == 0 {
				delete(dp.byRemote, r)
			} else {
				dp.byRemote[r] = list
			}
		}
	}
	return &out
}

// findRule finds the compiled form of cr among rules (sorted by number).
func findRule(rules []*irRule, cr *compiledRule) *irRule {
	i := sort.Search(len(rules), func(i int) bool { return rules[i].id >= cr.id })
	for ; i < len(rules) && rules[i].id == cr.id; i++ {
		if rules[i].src == cr {
			return rules[i]
		}
	}
	return nil
}

// diffLocal records in the delta which remote identities' entries of a
// local identity may differ between its old and new rule sets: all of
// them when the rules for every peer or the isolation changed.
func (u *update) diffLocal(old, lp *LocalPolicy) {
	id := lp.Identity
	if old == nil {
		u.delta.Locals[id] = true
		return
	}
	for d := range lp.dirs {
		a, b := &old.dirs[d], &lp.dirs[d]
		if a.empty() != b.empty() || !slices.Equal(a.isolating, b.isolating) || !rulesEqual(a.anyPeer, b.anyPeer) {
			u.delta.Locals[id] = true
			return
		}
	}
	for d := range lp.dirs {
		a, b := &old.dirs[d], &lp.dirs[d]
		for r, list := range a.byRemote {
			if !rulesEqual(list, b.byRemote[r]) {
				u.delta.markRemote(id, r)
			}
		}
		for r, list := range b.byRemote {
			if _, ok := a.byRemote[r]; !ok && len(list) > 0 {
				u.delta.markRemote(id, r)
			}
		}
	}
}

// rulesEqual reports whether two rule lists decide alike.
func rulesEqual(a, b []*irRule) bool {
	return slices.EqualFunc(a, b, func(x, y *irRule) bool {
		return x.id == y.id && x.deny == y.deny && x.audit == y.audit && x.any == y.any && x.allPorts == y.allPorts &&
			slices.Equal(x.ports, y.ports) && slices.EqualFunc(x.named, y.named, samePortSpec)
	})
}
