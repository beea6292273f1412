package networkpolicy

import (
	"math/bits"
	"net/netip"
	"sort"
)

// The datapath's policy map for one local identity is a longest-prefix-match
// trie over 64 key bits:
//
//	remote identity (32) | direction (8) | protocol (8) | port (16)
//
// all in network byte order. An entry's prefix length is 40 for "this remote
// identity, this direction, every protocol and port", 48 for "this
// protocol, every port", and 48+k for a port prefix of k bits (port ranges
// become a few aligned prefixes). Remote identity 0 is the wildcard: its
// entries hold the decision for every remote identity that no rule names.
//
// The BPF programs look up (remote, direction, protocol, port) with prefix
// length 64; when nothing matches they look up (0, direction, protocol,
// port); when that misses too, or the local identity has no map, the
// traffic is allowed because no policy selects the pod. Lookup below is that
// algorithm in Go; the property test checks that it agrees with Decide.

// Key bit widths and prefix lengths of the policy map.
const (
	PrefixIdentityDir = 40 // remote identity + direction
	PrefixProtocol    = 48 // + protocol
	PrefixFull        = 64 // + port
)

// PolicyKey is one policy map key. Bits beyond PrefixLen are zero.
type PolicyKey struct {
	PrefixLen uint32
	Remote    uint32
	Direction Direction
	Protocol  Protocol
	Port      uint16
}

// PolicyEntry is one policy map value.
type PolicyEntry struct {
	Verdict Verdict
	Reason  Reason
	Rule    uint32
	// DNSGroups restricts the DNS queries of an allowed flow (see
	// Decision.DNSGroups).
	DNSGroups uint16
}

var noPolicy = PolicyEntry{Verdict: Allow, Reason: ReasonNoPolicy}

// Tables are the exact contents of the datapath's maps.
type Tables struct {
	// IPCache maps address prefixes to identities (longest prefix wins).
	IPCache map[netip.Prefix]uint32
	// Policy holds, per local identity, its policy map entries.
	Policy map[uint32]map[PolicyKey]PolicyEntry
}

func packKey(remote uint32, dir Direction, proto Protocol, port uint16) uint64 {
	return uint64(remote)<<32 | uint64(dir)<<24 | uint64(proto)<<16 | uint64(port)
}

func unpackKey(v uint64, plen uint32) PolicyKey {
	if plen < 64 {
		v &^= (1<<(64-plen) - 1)
	}
	return PolicyKey{PrefixLen: plen, Remote: uint32(v >> 32), Direction: Direction(v >> 24), Protocol: Protocol(v >> 16), Port: uint16(v)}
}

// lpm is a longest prefix match as the kernel's LPM trie does it.
func lpm(m map[PolicyKey]PolicyEntry, remote uint32, dir Direction, proto Protocol, port uint16) (PolicyEntry, bool) {
	full := packKey(remote, dir, proto, port)
	for plen := uint32(PrefixFull); ; plen-- {
		if v, ok := m[unpackKey(full, plen)]; ok {
			return v, true
		}
		if plen == 0 {
			return PolicyEntry{}, false
		}
	}
}

// Lookup decides as the BPF programs do, from the tables alone.
func (t *Tables) Lookup(local uint32, dir Direction, remote uint32, proto Protocol, port uint16) PolicyEntry {
	m, ok := t.Policy[local]
	if !ok {
		return noPolicy
	}
	if !hasPorts(proto) {
		port = 0
	}
	if v, ok := lpm(m, remote, dir, proto, port); ok {
		return v
	}
	if v, ok := lpm(m, IdentityNone, dir, proto, port); ok {
		return v
	}
	return noPolicy
}

// LookupIP returns the identity of an address by longest prefix match.
func (t *Tables) LookupIP(ip netip.Addr) (uint32, bool) {
	ip = ip.Unmap()
	for b := ip.BitLen(); b >= 0; b-- {
		p, _ := ip.Prefix(b)
		if id, ok := t.IPCache[p]; ok {
			return id, true
		}
	}
	return 0, false
}

// Flatten derives the datapath's tables from the engine.
func (e *Engine) Flatten() *Tables {
	t := &Tables{IPCache: map[netip.Prefix]uint32{}, Policy: map[uint32]map[PolicyKey]PolicyEntry{}}
	for p, id := range e.ipcache {
		t.IPCache[p] = id
	}
	for _, local := range e.LocalIdentities() {
		if m := e.FlattenLocal(local); len(m) > 0 {
			t.Policy[local] = m
		}
	}
	return t
}

// FlattenLocal returns the policy map entries of one local identity.
func (e *Engine) FlattenLocal(local uint32) map[PolicyKey]PolicyEntry {
	m := map[PolicyKey]PolicyEntry{}
	for _, entries := range e.FlattenGroups(local) {
		for k, v := range entries {
			m[k] = v
		}
	}
	return m
}

// Group is the policy map entries of one local identity that hold one
// remote identity in their keys (IdentityNone: the wildcard entries).
type Group map[PolicyKey]PolicyEntry

// FlattenGroups returns the policy map entries of one local identity by
// remote identity (remote identities without entries are left out).
func (e *Engine) FlattenGroups(local uint32) map[uint32]Group {
	out := map[uint32]Group{}
	lp := e.local[local]
	if lp == nil {
		return out
	}
	remotes := map[uint32]bool{IdentityNone: true}
	for _, dir := range []Direction{Ingress, Egress} {
		for _, r := range e.specificRemotes(&lp.dirs[dir]) {
			remotes[r] = true
		}
	}
	for r := range remotes {
		if g := e.FlattenRemote(local, r); len(g) > 0 {
			out[r] = g
		}
	}
	return out
}

// FlattenRemote returns the policy map entries of one local identity for
// one remote identity (IdentityNone: the wildcard entries, which decide
// for every remote identity without entries of its own).
func (e *Engine) FlattenRemote(local, remote uint32) Group {
	m := Group{}
	lp := e.local[local]
	if lp == nil {
		return m
	}
	for _, dir := range []Direction{Ingress, Egress} {
		dp := &lp.dirs[dir]
		if dp.empty() {
			continue
		}
		f := func(remote uint32) valueFn {
			return func(p Protocol, port uint16) PolicyEntry {
				d := e.Decide(local, dir, remote, p, port)
				return PolicyEntry{Verdict: d.Verdict, Reason: d.Reason, Rule: d.Rule(), DNSGroups: d.DNSGroups}
			}
		}
		wild := f(IdentityNone)
		if remote == IdentityNone {
			emit(m, IdentityNone, dir, wild, func(Protocol, uint16) PolicyEntry { return noPolicy }, portBounds(dp, nil))
			continue
		}
		if !e.isSpecific(lp, dp, remote) {
			continue
		}
		emit(m, remote, dir, f(remote), wild, portBounds(dp, e.identities[remote]))
	}
	return m
}

// isSpecific reports whether a remote identity can decide differently from
// the wildcard in dp: some rule names it (by selector, CIDR or a named port
// it has), or it is loopback or the node, which are allowed whatever the
// wildcard decides.
func (e *Engine) isSpecific(lp *LocalPolicy, dp *dirPolicy, remote uint32) bool {
	if remote == IdentityLocalhost || remote == IdentityHost || len(dp.byRemote[remote]) > 0 {
		return true
	}
	if !lp.namedAny {
		return false
	}
	ident := e.identities[remote]
	for _, r := range dp.anyPeer {
		for _, ps := range r.named {
			if len(resolveNamed(ps, ident)) > 0 {
				return true
			}
		}
	}
	return false
}

// specificRemotes lists the remote identities that can decide differently
// from the wildcard in dp (see isSpecific).
func (e *Engine) specificRemotes(dp *dirPolicy) []uint32 {
	if dp.empty() {
		return nil
	}
	set := map[uint32]bool{IdentityLocalhost: true, IdentityHost: true}
	for id := range dp.byRemote {
		set[id] = true
	}
	for _, r := range dp.anyPeer {
		if len(r.named) == 0 {
			continue
		}
		for id, ident := range e.identities {
			for _, ps := range r.named {
				if len(resolveNamed(ps, ident)) > 0 {
					set[id] = true
				}
			}
		}
	}
	return sortedIDs(set)
}

type valueFn func(p Protocol, port uint16) PolicyEntry

// portBounds returns, per port protocol, the sorted starts of the port
// intervals on which no rule that can match remote (nil: the wildcard)
// changes its mind (0 first, 65536 last).
func portBounds(dp *dirPolicy, remote *Identity) map[Protocol][]int {
	sets := map[Protocol]map[int]bool{}
	for _, p := range portProtocols {
		sets[p] = map[int]bool{0: true, 65536: true}
	}
	add := func(pm PortMatch) {
		for _, p := range portProtocols {
			if pm.Proto == ProtoAny || pm.Proto == p {
				sets[p][int(pm.First)] = true
				sets[p][int(pm.Last)+1] = true
			}
		}
	}
	// Only the rules that can match the remote identity (for the wildcard:
	// the rules matching every peer) shape its decision.
	visit := func(r *irRule) {
		for _, pm := range r.ports {
			add(pm)
		}
		if remote != nil {
			for _, ps := range r.named {
				for _, pm := range resolveNamed(ps, remote) {
					add(pm)
				}
			}
		}
	}
	if remote == nil {
		for _, r := range dp.anyPeer {
			visit(r)
		}
	} else {
		dp.candidates(remote.ID, visit)
	}
	out := map[Protocol][]int{}
	for p, s := range sets {
		for b := range s {
			out[p] = append(out[p], b)
		}
		sort.Ints(out[p])
	}
	return out
}

type span struct {
	first, end int // [first, end)
	v          PolicyEntry
}

// emit adds the entries of one remote identity so that a lookup returns
// f(proto, port) everywhere; where no entry of the identity matches, the
// lookup falls through to fall.
func emit(m map[PolicyKey]PolicyEntry, remote uint32, dir Direction, f, fall valueFn, bounds map[Protocol][]int) {
	other, otherFall := f(ProtoAny, 0), fall(ProtoAny, 0)
	parent := fall
	if other != otherFall {
		m[PolicyKey{PrefixLen: PrefixIdentityDir, Remote: remote, Direction: dir}] = other
		parent = func(Protocol, uint16) PolicyEntry { return other }
	}
	for _, p := range portProtocols {
		b := bounds[p]
		var spans []span
		for i := 0; i+1 < len(b); i++ {
			spans = append(spans, span{b[i], b[i+1], f(p, uint16(b[i]))})
		}
		// Without a protocol entry: cover where f differs from the parent.
		var without []span
		for _, s := range spans {
			if s.v != parent(p, uint16(s.first)) {
				without = appendSpan(without, s)
			}
		}
		// With a protocol entry holding the most common value: cover
		// where f differs from it.
		width := map[PolicyEntry]int{}
		best, bestW := PolicyEntry{}, -1
		for _, s := range spans {
			width[s.v] += s.end - s.first
			if width[s.v] > bestW {
				best, bestW = s.v, width[s.v]
			}
		}
		var with []span
		for _, s := range spans {
			if s.v != best {
				with = appendSpan(with, s)
			}
		}
		chosen := without
		if 1+prefixCount(with) < prefixCount(without) {
			m[PolicyKey{PrefixLen: PrefixProtocol, Remote: remote, Direction: dir, Protocol: p}] = best
			chosen = with
		}
		for _, s := range chosen {
			forPrefixes(s.first, s.end, func(port uint16, k uint32) {
				m[PolicyKey{PrefixLen: PrefixProtocol + k, Remote: remote, Direction: dir, Protocol: p, Port: port}] = s.v
			})
		}
	}
}

// appendSpan appends s, merging it with the last span when they touch and
// hold the same value.
func appendSpan(list []span, s span) []span {
	if n := len(list); n > 0 && list[n-1].end == s.first && list[n-1].v == s.v {
		list[n-1].end = s.end
		return list
	}
	return append(list, s)
}

func prefixCount(spans []span) int {
	n := 0
	for _, s := range spans {
		forPrefixes(s.first, s.end, func(uint16, uint32) { n++ })
	}
	return n
}

// forPrefixes splits the port range [first, end) into aligned blocks and
// calls fn with each block's first port and prefix length in bits (0-16).
func forPrefixes(first, end int, fn func(port uint16, bits uint32)) {
	for first < end {
		size := 1 << 16
		if first != 0 {
			size = first & -first // largest power of two dividing first
		}
		for first+size > end {
			size >>= 1
		}
		fn(uint16(first), uint32(16-bits.TrailingZeros(uint(size))))
		first += size
	}
}
