package networkpolicy

import "slices"

// dropIdentity takes an identity that went (or changed) out of the rules
// naming it and, for a local identity, out of the sections selecting it.
func (u *update) dropIdentity(id uint32, ident *Identity) {
	c := u.c
	c.idx.remove(ident)
	for cr := range c.remoteRules[id] {
		delete(cr.remotes, id)
		for l := range cr.sec.locals {
			u.markPatch(l, id)
		}
	}
	delete(c.remoteRules, id)
	for cs := range c.localSections[id] {
		delete(cs.locals, id)
	}
	delete(c.localSections, id)
	if isLocal(ident) && !isLocal(c.identities[id]) {
		u.delta.Removed[id] = true
	}
}

// addIdentity puts an identity that came (or changed) into the rules of
// the policies in force that select it and, for a local identity, into the
// sections selecting it; a local identity is then compiled afresh.
func (u *update) addIdentity(ident *Identity) {
	c := u.c
	id := ident.ID
	c.idx.add(ident)
	c.ruleIdx.candidates(ident, func(cr *compiledRule) {
		if _, done := cr.remotes[id]; done || !ruleSelects(cr.rule, ident) {
			return
		}
		u.addRemote(cr, id)
		for l := range cr.sec.locals {
			u.markPatch(l, id)
		}
	})
	if !isLocal(ident) {
		return
	}
	u.rebuild[id] = true
	c.sectionIdx.candidates(ident, func(cs *compiledSection) {
		if subjectMatches(&cs.sec.Subject, ident) {
			u.addLocal(cs, id)
		}
	})
}

func ruleSelects(r *Rule, ident *Identity) bool {
	for i := range r.Peers {
		if peerMatches(&r.Peers[i], ident) {
			return true
		}
	}
	return false
}

func (u *update) addRemote(cr *compiledRule, id uint32) {
	cr.remotes[id] = struct{}{}
	setAdd(u.c.remoteRules, id, cr)
}

func (u *update) addLocal(cs *compiledSection, id uint32) {
	cs.locals[id] = struct{}{}
	setAdd(u.c.localSections, id, cs)
}

// dropPolicies removes the policies that are not in pols (by pointer: a
// changed policy is a new one); the local identities they selected are
// compiled afresh. A removed policy with the name of a new one passes to it
// what did not change: its sections with the same subject, and in them the
// rules of the same path that select the same peers, with the identities
// they select.
func (u *update) dropPolicies(pols []*Policy) {
	c := u.c
	keep := make(map[*Policy]bool, len(pols))
	byName := map[string][]*Policy{}
	for _, p := range pols {
		keep[p] = true
		if _, ok := c.policies[p]; !ok {
			byName[p.String()] = append(byName[p.String()], p)
		}
	}
	u.successors = map[*Policy]*policyState{}
	for pol, ps := range c.policies {
		if keep[pol] {
			continue
		}
		for id := range ps.refs {
			u.touchedRules[id] = true
			c.ruleOwners[id] = slices.DeleteFunc(c.ruleOwners[id], func(o *policyState) bool { return o == ps })
			if len(c.ruleOwners[id]) == 0 {
				delete(c.ruleOwners, id)
			}
		}
		delete(c.policies, pol)
		name := pol.String()
		if next := byName[name]; len(next) > 0 {
			byName[name] = next[1:]
			u.successors[next[0]] = u.pass(ps, next[0])
			continue
		}
		for _, cs := range ps.sections {
			u.dropSection(cs)
		}
	}
}

// dropSection removes a section and its rules.
func (u *update) dropSection(cs *compiledSection) {
	c := u.c
	for l := range cs.locals {
		u.rebuild[l] = true
		setRemove(c.localSections, l, cs)
	}
	c.sectionIdx.addSelector(cs, &cs.sec.Subject, cs.sec.Subject.Namespace, true)
	for _, cr := range cs.rules {
		u.dropRule(cr)
	}
}

func (u *update) dropRule(cr *compiledRule) {
	u.indexRule(cr, true)
	for id := range cr.remotes {
		setRemove(u.c.remoteRules, id, cr)
	}
}

// pass gives the new version pol of a policy what its old state holds that
// did not change; the sections and rules left nil are compiled by
// addPolicies.
func (u *update) pass(old *policyState, pol *Policy) *policyState {
	ps := &policyState{pol: pol}
	for si := range pol.Sections {
		sec := &pol.Sections[si]
		if si >= len(old.sections) || !sameSubject(old.sections[si].sec, sec) {
			ps.sections = append(ps.sections, nil)
			continue
		}
		cs := old.sections[si]
		cs.pol, cs.sec = ps, sec
		changed := old.pol.Audit != pol.Audit
		byPath := make(map[string]*compiledRule, len(cs.rules))
		for _, cr := range cs.rules {
			byPath[cr.rule.Path] = cr
		}
		rules := make([]*compiledRule, len(sec.Rules))
		for i, r := range sec.Rules {
			cr := byPath[r.Path]
			if cr == nil || !sameSelection(cr.rule, r) {
				changed = true
				continue
			}
			delete(byPath, r.Path)
			if !sameRule(cr.rule, r) {
				changed = true
			}
			cr.rule = r
			rules[i] = cr
		}
		for _, cr := range byPath {
			u.dropRule(cr)
			changed = true
		}
		cs.rules = rules
		if changed {
			for l := range cs.locals {
				u.rebuild[l] = true
			}
		}
		ps.sections = append(ps.sections, cs)
	}
	for si := len(ps.sections); si < len(old.sections); si++ {
		u.dropSection(old.sections[si])
	}
	for si, cs := range old.sections {
		if si < len(ps.sections) && ps.sections[si] != cs {
			u.dropSection(cs)
		}
	}
	return ps
}

// sameSubject reports whether two sections select the same pods and
// isolate them alike.
func sameSubject(a, b *Section) bool {
	return a.Isolates == b.Isolates && sameSelector(&a.Subject, &b.Subject)
}

func sameSelector(a, b *Selector) bool {
	if a == nil || b == nil {
		return a == b
	}
	return (a.sel == nil) == (b.sel == nil) && a.String() == b.String() && a.View == b.View && a.Namespace == b.Namespace
}

// sameSelection reports whether two rules select the same peers.
func sameSelection(a, b *Rule) bool {
	return a.AnyPeer == b.AnyPeer && slices.EqualFunc(a.Peers, b.Peers, func(x, y Peer) bool {
		return x.Kind == y.Kind && x.Namespace == y.Namespace && sameSelector(x.Namespaces, y.Namespaces) &&
			sameSelector(x.Pods, y.Pods) && x.CIDR == y.CIDR && slices.Equal(x.Except, y.Except) && x.MatchPodIPs == y.MatchPodIPs &&
			x.FQDN == y.FQDN
	})
}

// sameRule reports whether two rules of one path decide alike.
func sameRule(a, b *Rule) bool {
	return a.Direction == b.Direction && a.Deny == b.Deny && sameSelection(a, b) && slices.EqualFunc(a.Ports, b.Ports, samePortSpec)
}

// indexRule adds a rule to (or removes it from) the index that finds the
// rules a new pod identity may match. Peers that select only addresses
// outside the cluster or the node need no entry: those identities change
// only with the policies themselves.
func (u *update) indexRule(cr *compiledRule, remove bool) {
	if cr.remotes == nil {
		return
	}
	for i := range cr.rule.Peers {
		p := &cr.rule.Peers[i]
		switch {
		case p.Kind == PeerPods:
			u.c.ruleIdx.addSelector(cr, p.Pods, p.Namespace, remove)
		case p.Kind == PeerCluster, p.Kind == PeerCIDR && p.MatchPodIPs:
			u.c.ruleIdx.addRest(cr, remove)
		}
	}
}

// addPolicies compiles the policies that are new (or changed) against the
// identities of this update, and records every policy's position.
func (u *update) addPolicies(pols []*Policy) {
	c := u.c
	for i, pol := range pols {
		if ps, ok := c.policies[pol]; ok {
			ps.seq = i
			continue
		}
		ps := u.successors[pol]
		if ps == nil {
			ps = &policyState{pol: pol, sections: make([]*compiledSection, len(pol.Sections))}
		}
		ps.seq, ps.refs = i, map[uint32]RuleRef{}
		name := pol.String()
		for _, d := range []Direction{Ingress, Egress} {
			id := c.alloc.rule(name + "#default-" + d.String())
			ps.defaults[d] = id
			ps.refs[id] = RuleRef{ID: id, Policy: pol, Direction: d, DefaultDeny: true, Line: pol.Line}
		}
		for si := range pol.Sections {
			cs := ps.sections[si]
			if cs == nil {
				cs = u.compileSection(ps, &pol.Sections[si])
				ps.sections[si] = cs
			}
			for ri, r := range cs.sec.Rules {
				cr := cs.rules[ri]
				if cr == nil {
					cr = u.compileRule(cs, r, c.alloc.rule(name+"#"+r.Path))
					cs.rules[ri] = cr
				}
				ps.refs[cr.id] = RuleRef{ID: cr.id, Policy: pol, Path: r.Path, Line: r.Line, Direction: r.Direction}
			}
		}
		for id := range ps.refs {
			u.touchedRules[id] = true
			c.ruleOwners[id] = append(c.ruleOwners[id], ps)
		}
		c.policies[pol] = ps
	}
}

// compileSection finds the local identities a new section selects; its
// rules are compiled by the caller.
func (u *update) compileSection(ps *policyState, sec *Section) *compiledSection {
	c := u.c
	cs := &compiledSection{pol: ps, sec: sec, locals: map[uint32]struct{}{}, rules: make([]*compiledRule, len(sec.Rules))}
	c.idx.podCandidates(&sec.Subject, func(id uint32) {
		if ident := c.identities[id]; isLocal(ident) && subjectMatches(&sec.Subject, ident) {
			u.addLocal(cs, id)
			u.rebuild[id] = true
		}
	})
	c.sectionIdx.addSelector(cs, &sec.Subject, sec.Subject.Namespace, false)
	return cs
}

// compileRule finds the identities a new rule selects; the local identities
// of its section are compiled afresh.
func (u *update) compileRule(cs *compiledSection, r *Rule, id uint32) *compiledRule {
	c := u.c
	c.serial++
	cr := &compiledRule{sec: cs, rule: r, id: id, serial: c.serial}
	if !r.AnyPeer {
		cr.remotes = map[uint32]struct{}{}
		for pi := range r.Peers {
			peer := &r.Peers[pi]
			c.idx.candidates(peer, func(id uint32) {
				if _, done := cr.remotes[id]; !done && peerMatches(peer, c.identities[id]) {
					u.addRemote(cr, id)
				}
			})
		}
	}
	u.indexRule(cr, false)
	for l := range cs.locals {
		u.rebuild[l] = true
	}
	return cr
}

// samePortSpec reports whether two port specs are equal.
func samePortSpec(x, y PortSpec) bool {
	return x.Protocol == y.Protocol && x.First == y.First && x.Last == y.Last && x.Name == y.Name && x.Path == y.Path &&
		x.Line == y.Line && slices.Equal(x.DNS, y.DNS) &&
		(x.HTTP == nil) == (y.HTTP == nil) && slices.EqualFunc(x.HTTP, y.HTTP, HTTPRule.Equal)
}
