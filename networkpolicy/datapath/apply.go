package datapath

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"
	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/kprobes/abi"
	"github.com/vigilsec/vigil/networkpolicy"
)

// ApplyStats counts what an Apply changed in the kernel, and what it cost.
type ApplyStats struct {
	// PolicyMapsWritten counts local identities whose policy map was built
	// aside and put in whole; PolicyMapsRemoved those dropped.
	PolicyMapsWritten, PolicyMapsRemoved int
	// PolicyEntriesWritten counts the policy entries written (in place or
	// into maps built aside), PolicyEntriesRemoved those deleted in place.
	PolicyEntriesWritten, PolicyEntriesRemoved int
	IPCacheUpdated, IPCacheRemoved             int
	CgroupsUpdated, CgroupsRemoved             int
}

// Entries is the number of map entries the apply wrote or deleted.
func (s ApplyStats) Entries() int {
	return s.PolicyEntriesWritten + s.PolicyEntriesRemoved + s.IPCacheUpdated + s.IPCacheRemoved + s.CgroupsUpdated + s.CgroupsRemoved
}

// ApplyTimes are the durations of an Apply's stages.
type ApplyTimes struct {
	// Compile is the engine's update, Flatten the computation of the
	// entries that may differ, Write the map writes.
	Compile, Flatten, Write time.Duration
}

// Apply compiles policies and namespaces of res with the pods of the
// workload source (res.Pods is ignored) and brings the kernel maps to the
// result. Only what the change touches is compiled, and only the entries
// that differ are written; see ApplyTimed.
func (d *Datapath) Apply(ctx context.Context, res *networkpolicy.Resources) (ApplyStats, error) {
	st, _, err := d.ApplyTimed(ctx, res)
	return st, err
}

// ApplyTimed is Apply, also returning the durations of its stages.
//
// No half-written state is visible to a packet. A local identity's new map
// is built aside and put in np_policy at once, and its cgroups are mapped
// to it only then. Entries of an existing map change in place in an order
// in which each lookup gets the old or the new decision, unless the
// entries for every remote identity change while sockets use the map: then
// a new map is built aside and swapped in. Addresses are mapped to an
// identity only once its entries are in place, and the entries of an
// identity no address maps to any more go only after the programs that
// may have read the old address have finished (a grace period). Nothing is
// written when a map would grow past MaxPolicyEntries. When a write fails,
// the next Apply compares everything with the kernel.
func (d *Datapath) ApplyTimed(ctx context.Context, res *networkpolicy.Resources) (ApplyStats, ApplyTimes, error) {
	var st ApplyStats
	var times ApplyTimes
	pods, err := d.cfg.Workloads.Pods(ctx)
	if err != nil {
		return st, times, fmt.Errorf("datapath: list workloads: %w", err)
	}
	in := &networkpolicy.Resources{Namespaces: res.Namespaces, Policies: res.Policies, HostIPs: append(res.HostIPs, d.cfg.HostIPs...)}
	// Copies: the compiler keeps the pods it was given, and a source may
	// reuse its slice.
	copies := make([]networkpolicy.Pod, len(pods))
	in.Pods = make([]*networkpolicy.Pod, len(pods))
	for i := range pods {
		copies[i] = pods[i].Pod
		in.Pods[i] = &copies[i]
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.loaded {
		return st, times, errors.New("datapath: Apply before Load")
	}
	t0 := time.Now()
	engine, delta, err := d.comp.Update(in)
	if err != nil {
		return st, times, fmt.Errorf("datapath: %w", err)
	}
	t1 := time.Now()
	times.Compile = t1.Sub(t0)
	if d.legend != nil {
		keys := d.alloc.Keys()
		if d.adopted {
			kept, dropped, err := d.reconcileLearned(keys)
			if err != nil {
				d.resync = true
				return st, times, err
			}
			d.adopted = false
			d.log.WithFields(logrus.Fields{"kept": kept, "dropped": dropped}).Info("learned DNS addresses of the last run adopted")
		}
		if err := d.writeLegend(keys); err != nil {
			d.resync = true
			return st, times, err
		}
	}
	p, err := d.makePlan(engine, delta, pods)
	t2 := time.Now()
	times.Flatten = t2.Sub(t1)
	if err != nil {
		// The compiler has moved on; the kernel has not.
		d.resync = true
		return st, times, err
	}
	// Redirects first: a connection newly allowed with rules.http is
	// never let through unproxied; stale redirects go last.
	l7 := d.httpRedirects(engine)
	err = d.writeHTTPRedirects(l7)
	if err == nil {
		err = d.write(p, &st)
	}
	if err == nil {
		err = d.removeHTTPRedirects(l7)
	}
	if err == nil {
		// After the entries of new name identities, so that a name is
		// never classified into an identity the policy maps lack.
		err = d.writeNames(engine.Names())
	}
	times.Write = time.Since(t2)
	if err != nil {
		d.resync = true
		return st, times, err
	}
	d.resync = false
	for _, ref := range delta.RetiredRules {
		d.retired[ref.ID] = ref
	}
	d.engine = engine
	if d.adopting {
		// The maps hold what was applied: the programs of an earlier run
		// can be replaced. Until then they enforce, also when this fails.
		if err := d.takeOverLocked(); err != nil {
			return st, times, err
		}
	}
	d.log.WithFields(logrus.Fields{
		"policy_maps_written": st.PolicyMapsWritten, "policy_maps_removed": st.PolicyMapsRemoved,
		"policy_entries_written": st.PolicyEntriesWritten, "policy_entries_removed": st.PolicyEntriesRemoved,
		"ipcache_updated": st.IPCacheUpdated, "ipcache_removed": st.IPCacheRemoved,
		"cgroups_updated": st.CgroupsUpdated, "cgroups_removed": st.CgroupsRemoved,
		"compile": times.Compile, "flatten": times.Flatten, "write": times.Write,
	}).Debug("network policy applied")
	return st, times, nil
}

// write carries out a plan in the order that keeps every packet's decision
// that of the old state or of the new one.
func (d *Datapath) write(p *plan, st *ApplyStats) error {
	// 1. Policy entries: maps built aside, entries in place, maps that
	// lost their entries.
	for _, lp := range p.locals {
		var err error
		switch lp.method {
		case methodBuild:
			err = d.buildMap(lp, st)
		case methodInPlace:
			err = d.writeInPlace(lp, lp.now, st)
		case methodRemove:
			err = d.removeMap(lp.local, st)
		}
		if err != nil {
			return err
		}
	}
	// 2. Addresses to identities, then cgroups to local identities.
	for pfx, id := range p.ipPut {
		if err := d.objs.NpIpcache.Put(ipcacheKey(pfx), id); err != nil {
			return fmt.Errorf("datapath: ipcache %s: %w", pfx, err)
		}
		d.ipcache[pfx] = id
		st.IPCacheUpdated++
	}
	for cg, id := range p.cgPut {
		if err := d.objs.NpCgroups.Put(cg, id); err != nil {
			return fmt.Errorf("datapath: cgroup %d: %w", cg, err)
		}
		d.cgroups[cg] = id
		st.CgroupsUpdated++
	}
	d.podIPs = p.podIPs
	// 3. What is gone, in reverse order.
	for _, cg := range p.cgDel {
		if err := d.objs.NpCgroups.Delete(cg); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("datapath: remove cgroup %d: %w", cg, err)
		}
		delete(d.cgroups, cg)
		st.CgroupsRemoved++
	}
	for _, pfx := range p.ipDel {
		if err := d.objs.NpIpcache.Delete(ipcacheKey(pfx)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("datapath: remove ipcache %s: %w", pfx, err)
		}
		delete(d.ipcache, pfx)
		st.IPCacheRemoved++
	}
	// 4. Entries of identities no address maps to any more, and maps no
	// cgroup uses any more, once no program can still be using what it
	// read before steps 2 and 3.
	late := len(p.remove) > 0
	for _, lp := range p.locals {
		late = late || len(lp.late) > 0
	}
	if !late {
		return nil
	}
	if err := d.waitForPrograms(); err != nil {
		return err
	}
	for _, lp := range p.locals {
		if len(lp.late) == 0 {
			continue
		}
		if err := d.writeInPlace(lp, lp.late, st); err != nil {
			return err
		}
	}
	for _, local := range p.remove {
		if err := d.removeMap(local, st); err != nil {
			return err
		}
		delete(d.policy, local)
	}
	return nil
}

// buildMap builds a local identity's map aside and puts it in np_policy.
func (d *Datapath) buildMap(lp *localPlan, st *ApplyStats) error {
	m, err := ebpf.NewMap(d.inner)
	if err != nil {
		return fmt.Errorf("datapath: policy map of identity %d: %w", lp.local, err)
	}
	n := 0
	for _, g := range lp.final {
		for k, v := range g {
			key, val := PolicyKey(k), policyValue(v)
			if err := m.Put(&key, &val); err != nil {
				m.Close()
				return fmt.Errorf("datapath: policy map of identity %d: %w", lp.local, err)
			}
			n++
		}
	}
	if err := d.objs.NpPolicy.Put(lp.local, m); err != nil {
		m.Close()
		return fmt.Errorf("datapath: install policy map of identity %d: %w", lp.local, err)
	}
	if old := d.inners[lp.local]; old != nil {
		old.Close()
	}
	d.inners[lp.local], d.policy[lp.local] = m, lp.final
	st.PolicyMapsWritten++
	st.PolicyEntriesWritten += n
	return nil
}

// writeInPlace brings groups of an existing map to next (nil: the group
// goes) in the order of inPlaceWrites, waiting for running programs where
// it says.
func (d *Datapath) writeInPlace(lp *localPlan, next map[uint32]networkpolicy.Group, st *ApplyStats) error {
	local := lp.local
	m := d.inners[local]
	mirror := d.policy[local]
	ws, grace := inPlaceWrites(mirror, next, lp.looked)
	for i, w := range ws {
		if i == grace {
			if err := d.waitForPrograms(); err != nil {
				return err
			}
		}
		key := PolicyKey(w.k)
		g := mirror[w.k.Remote]
		if g == nil {
			g = networkpolicy.Group{}
			mirror[w.k.Remote] = g
		}
		if w.del {
			if err := m.Delete(&key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("datapath: remove policy entry of identity %d: %w", local, err)
			}
			delete(g, w.k)
			st.PolicyEntriesRemoved++
		} else {
			val := policyValue(w.v)
			if err := m.Put(&key, &val); err != nil {
				return fmt.Errorf("datapath: policy entry of identity %d: %w", local, err)
			}
			g[w.k] = w.v
			st.PolicyEntriesWritten++
		}
		if len(g) == 0 {
			delete(mirror, w.k.Remote)
		}
	}
	return nil
}

// removeMap drops a local identity's map; the identity keeps no entries.
func (d *Datapath) removeMap(local uint32, st *ApplyStats) error {
	if m := d.inners[local]; m != nil {
		if err := d.objs.NpPolicy.Delete(local); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("datapath: remove policy map of identity %d: %w", local, err)
		}
		m.Close()
		delete(d.inners, local)
		st.PolicyMapsRemoved++
	}
	d.policy[local] = map[uint32]networkpolicy.Group{}
	return nil
}

// waitForPrograms returns once every program running when it was called
// has finished: an update of np_policy (a map of maps) waits for an RCU
// grace period before it returns. It puts an existing inner map back in
// its place.
func (d *Datapath) waitForPrograms() error {
	for local, m := range d.inners {
		if err := d.objs.NpPolicy.Update(local, m, ebpf.UpdateExist); err != nil {
			return fmt.Errorf("datapath: wait for running programs: %w", err)
		}
		return nil
	}
	return nil
}

func policyValue(v networkpolicy.PolicyEntry) abi.NetpolPolicyValue {
	return abi.NetpolPolicyValue{Verdict: uint8(v.Verdict), Reason: uint8(v.Reason), DnsGroups: v.DNSGroups, Rule: v.Rule}
}

// ruleLocked names the rule of a record's number: one in force, or one of
// a policy gone since.
func (d *Datapath) ruleLocked(id uint32) networkpolicy.RuleRef {
	if d.engine != nil {
		if r, ok := d.engine.Rule(id); ok {
			return r
		}
	}
	return d.retired[id]
}

// Size returns how many policy maps the kernel holds, and their entries.
func (d *Datapath) Size() (maps, entries int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for local := range d.inners {
		entries += d.countEntries(local)
	}
	return len(d.inners), entries
}
