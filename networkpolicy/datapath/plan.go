package datapath

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"

	"github.com/vigilsec/vigil/networkpolicy"
)

// How the entries of one local identity's policy map change.
type policyMethod uint8

const (
	// methodNone: nothing changes.
	methodNone policyMethod = iota
	// methodBuild: a new map with every entry is built aside and put in
	// np_policy at once (the identity had no map, or the map would
	// overflow while written in place).
	methodBuild
	// methodInPlace: the entries that differ are written into the map in
	// place, in an order in which every lookup returns the old or the new
	// decision (see Datapath.writeInPlace).
	methodInPlace
	// methodRemove: the map goes (no entries, or no cgroup any more).
	methodRemove
)

// localPlan is what one Apply does to one local identity's policy map.
type localPlan struct {
	local  uint32
	method policyMethod
	// looked: cgroups in the kernel map to the identity, so programs
	// look its map up.
	looked bool
	// final are the groups of the map after the apply (methodBuild: all
	// of them).
	final map[uint32]networkpolicy.Group
	// now are the groups written before addresses and cgroups change,
	// late those of remote identities that no address maps to once they
	// changed: written after the ipcache (nil: the group goes).
	now, late map[uint32]networkpolicy.Group
	count     int
}

// plan is everything one Apply writes, computed before the first write so
// that a problem (a map too large) leaves the kernel as it was.
type plan struct {
	locals []*localPlan
	ipPut  map[netip.Prefix]uint32
	ipDel  []netip.Prefix
	cgPut  map[uint64]uint32
	cgDel  []uint64
	remove []uint32 // local identities whose map goes after the cgroups
	podIPs map[uint64][]netip.Addr
}

var reservedIdentities = []uint32{networkpolicy.IdentityHost, networkpolicy.IdentityWorldIPv4,
	networkpolicy.IdentityWorldIPv6, networkpolicy.IdentityLocalhost}

// reach tells which remote identities a packet can have, before and after
// an apply: those the ipcache maps addresses to, and the reserved ones.
// The sets are computed when first asked for.
type reach struct {
	now, next       map[netip.Prefix]uint32
	nowIDs, nextIDs map[uint32]bool
}

func (r *reach) before(id uint32) bool { return reachableIn(r.now, &r.nowIDs)[id] }
func (r *reach) after(id uint32) bool  { return reachableIn(r.next, &r.nextIDs)[id] }

func reachableIn(ipcache map[netip.Prefix]uint32, set *map[uint32]bool) map[uint32]bool {
	if *set == nil {
		*set = make(map[uint32]bool, len(ipcache))
		for _, id := range ipcache {
			(*set)[id] = true
		}
		for _, id := range reservedIdentities {
			(*set)[id] = true
		}
	}
	return *set
}

// makePlan compares the engine's state with the kernel's (as the datapath
// remembers it) where the delta says it may differ, or everywhere after a
// failed apply.
func (d *Datapath) makePlan(e *networkpolicy.Engine, delta *networkpolicy.Delta, pods []Pod) (*plan, error) {
	full := d.resync || delta.All
	p := &plan{ipPut: map[netip.Prefix]uint32{}, cgPut: map[uint64]uint32{}, podIPs: map[uint64][]netip.Addr{}}

	// Cgroups: only local identities with a cgroup on this node need a map.
	wantCg := map[uint64]uint32{}
	wanted := map[uint32]bool{}
	for _, pod := range pods {
		if len(pod.CgroupIDs) == 0 {
			continue
		}
		ep, err := e.Pod(pod.Key())
		if err != nil {
			return nil, err
		}
		wanted[ep.Local] = true
		for _, cg := range pod.CgroupIDs {
			wantCg[cg] = ep.Local
			p.podIPs[cg] = pod.IPs
		}
	}
	for cg, id := range wantCg {
		if cur, ok := d.cgroups[cg]; !ok || cur != id {
			p.cgPut[cg] = id
		}
	}
	for cg := range d.cgroups {
		if _, ok := wantCg[cg]; !ok {
			p.cgDel = append(p.cgDel, cg)
		}
	}
	slices.Sort(p.cgDel)

	// Addresses.
	next := e.IPCache()
	check := func(pfx netip.Prefix) {
		id, ok := next[pfx]
		cur, had := d.ipcache[pfx]
		switch {
		case ok && (!had || cur != id):
			p.ipPut[pfx] = id
		case !ok && had:
			p.ipDel = append(p.ipDel, pfx)
		}
	}
	if full {
		for pfx := range next {
			check(pfx)
		}
		for pfx := range d.ipcache {
			check(pfx)
		}
	} else {
		for pfx := range delta.IPCache {
			check(pfx)
		}
	}
	sort.Slice(p.ipDel, func(i, j int) bool { return p.ipDel[i].String() < p.ipDel[j].String() })

	// Policy maps.
	looked := map[uint32]bool{}
	for _, id := range d.cgroups {
		looked[id] = true
	}
	r := &reach{now: d.ipcache, next: next}
	for _, local := range sortedKeys(wanted) {
		lp, err := d.planLocal(e, delta, full, local, looked[local], r)
		if err != nil {
			return nil, err
		}
		if lp.method != methodNone {
			p.locals = append(p.locals, lp)
		}
	}
	for _, local := range sortedKeys(d.policy) {
		if !wanted[local] {
			p.remove = append(p.remove, local)
		}
	}
	return p, nil
}

// planLocal decides how the map of one local identity changes.
func (d *Datapath) planLocal(e *networkpolicy.Engine, delta *networkpolicy.Delta, full bool, local uint32, looked bool, r *reach) (*localPlan, error) {
	lp := &localPlan{local: local, looked: looked}
	mirror, known := d.policy[local]
	changed := map[uint32]networkpolicy.Group{}
	if full || !known || delta.Locals[local] {
		groups := e.FlattenGroups(local)
		for id, g := range groups {
			if !maps.Equal(g, mirror[id]) {
				changed[id] = g
			}
		}
		for id := range mirror {
			if _, ok := groups[id]; !ok {
				changed[id] = nil
			}
		}
	} else {
		for id := range delta.Remotes[local] {
			g := e.FlattenRemote(local, id)
			if len(g) == 0 {
				g = nil
			}
			if !maps.Equal(g, mirror[id]) {
				changed[id] = g
			}
		}
	}
	if known && len(changed) == 0 {
		return lp, nil
	}
	final := maps.Clone(mirror)
	if final == nil {
		final = map[uint32]networkpolicy.Group{}
	}
	added := 0 // entries the map holds at most while written in place
	for id, g := range changed {
		for k := range g {
			if _, ok := mirror[id][k]; !ok {
				added++
			}
		}
		if g == nil {
			delete(final, id)
		} else {
			final[id] = g
		}
	}
	lp.final = final
	for _, g := range final {
		lp.count += len(g)
	}
	if lp.count > d.cfg.MaxPolicyEntries {
		return nil, fmt.Errorf("datapath: identity %d needs %d policy entries, more than MaxPolicyEntries %d", local, lp.count, d.cfg.MaxPolicyEntries)
	}
	switch {
	case lp.count == 0:
		// No entries: no map (no policy selects the pod).
		lp.method = methodRemove
		return lp, nil
	case d.inners[local] == nil:
		lp.method = methodBuild
		return lp, nil
	case d.countEntries(local)+added > d.cfg.MaxPolicyEntries:
		lp.method = methodBuild
	default:
		lp.method = methodInPlace
	}
	// The groups of remote identities that addresses map to now and not
	// after this apply change once the addresses did (late); the others
	// now. A map built aside holds the old entries of the late ones until
	// then.
	lp.now, lp.late = map[uint32]networkpolicy.Group{}, map[uint32]networkpolicy.Group{}
	for id, g := range changed {
		if id != networkpolicy.IdentityNone && looked && r.before(id) && !r.after(id) {
			lp.late[id] = g
		} else {
			lp.now[id] = g
		}
	}
	if lp.method == methodBuild && len(lp.late) > 0 {
		built := maps.Clone(lp.final)
		n := lp.count
		for id := range lp.late {
			n += len(mirror[id]) - len(built[id])
			if old := mirror[id]; old != nil {
				built[id] = old
			} else {
				delete(built, id)
			}
		}
		if n <= d.cfg.MaxPolicyEntries {
			lp.final = built
		} else {
			// No room for both: the map goes to its final state at once.
			lp.late = map[uint32]networkpolicy.Group{}
		}
	}
	return lp, nil
}

func (d *Datapath) countEntries(local uint32) int {
	n := 0
	for _, g := range d.policy[local] {
		n += len(g)
	}
	return n
}

func sortedKeys[V any](m map[uint32]V) []uint32 {
	out := make([]uint32, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// write is one entry to put, or to delete, in a policy map.
type write struct {
	k   networkpolicy.PolicyKey
	v   networkpolicy.PolicyEntry
	del bool
}

// inPlaceWrites returns the writes that bring the groups of next (nil: the
// group goes) from their state in mirror to next, and the index of the
// write before which programs must have finished (-1: none).
//
// The order keeps the answer of every lookup that of the old entries or
// that of the new ones. A lookup takes the longest entry of its remote
// identity matching its key, else the longest of the wildcard's. The writes
// go in four runs: the puts of the remote identities' groups, the
// wildcard's puts, its deletes, the remote identities' deletes; puts from
// the longest prefix to the shortest, deletes from the shortest to the
// longest. In a run of puts, a key whose longest new entry is written finds
// it, and any other key its longest old entry (no new one is longer); in a
// run of deletes, the longest entry a key finds is its new one, or an old
// one longer than it (its old answer). A key of a remote identity finds
// the identity's old entries until the wildcard is new, and its new entries
// from before the wildcard changes. A program looks its remote identity up,
// then the wildcard: when sockets use the map (looked) and both change,
// the wildcard changes only once the programs that may have missed the
// remote identity's new entries are done.
func inPlaceWrites(mirror, next map[uint32]networkpolicy.Group, looked bool) ([]write, int) {
	oldR, nextR := map[uint32]networkpolicy.Group{}, map[uint32]networkpolicy.Group{}
	oldW, nextW := map[uint32]networkpolicy.Group{}, map[uint32]networkpolicy.Group{}
	for r, g := range next {
		if r == networkpolicy.IdentityNone {
			oldW[r], nextW[r] = mirror[r], g
		} else {
			oldR[r], nextR[r] = mirror[r], g
		}
	}
	rPuts, rDels := orderWrites(oldR, nextR)
	wPuts, wDels := orderWrites(oldW, nextW)
	ws := make([]write, 0, len(rPuts)+len(rDels)+len(wPuts)+len(wDels))
	ws = append(ws, rPuts...)
	grace := -1
	if looked && len(rPuts) > 0 && len(wPuts)+len(wDels) > 0 {
		grace = len(ws)
	}
	ws = append(append(append(ws, wPuts...), wDels...), rDels...)
	return ws, grace
}

// orderWrites returns the puts (longest prefix first) and the deletes
// (shortest prefix first) that turn groups old into groups next.
func orderWrites(old, next map[uint32]networkpolicy.Group) (puts, dels []write) {
	for r, g := range next {
		for k, v := range g {
			if cur, ok := old[r][k]; !ok || cur != v {
				puts = append(puts, write{k: k, v: v})
			}
		}
	}
	for r, g := range old {
		for k := range g {
			if _, ok := next[r][k]; !ok {
				dels = append(dels, write{k: k, del: true})
			}
		}
	}
	sort.Slice(puts, func(i, j int) bool { return keyLess(puts[j].k, puts[i].k) })
	sort.Slice(dels, func(i, j int) bool { return keyLess(dels[i].k, dels[j].k) })
	return puts, dels
}

// keyLess orders keys by prefix length, then by key.
func keyLess(a, b networkpolicy.PolicyKey) bool {
	if a.PrefixLen != b.PrefixLen {
		return a.PrefixLen < b.PrefixLen
	}
	if a.Remote != b.Remote {
		return a.Remote < b.Remote
	}
	if a.Direction != b.Direction {
		return a.Direction < b.Direction
	}
	if a.Protocol != b.Protocol {
		return a.Protocol < b.Protocol
	}
	return a.Port < b.Port
}
