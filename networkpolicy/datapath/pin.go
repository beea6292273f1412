package datapath

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"

	"github.com/vigilsec/vigil/kprobes/abi"
)

// DefaultPinDir is where the agent keeps the learned DNS state across
// restarts.
const DefaultPinDir = "/sys/fs/bpf/vigil/dns"

// Pinned maps: the learned addresses, and the legend of the identity
// numbers they hold (number -> sha256 of the allocator's description), so
// that a restarted agent, whose allocator numbers identities afresh, can
// carry them over.
const (
	pinFQDN   = "np_fqdn"
	pinLegend = "np_fqdn_legend"
)

type legendDigest [sha256.Size]byte

// openPinned returns the pinned maps of dir, creating and pinning them
// when they do not exist (or no longer fit the program's definition).
// adopted tells whether the learned addresses come from an earlier run.
func openPinned(dir string, spec *ebpf.CollectionSpec) (fqdn, legend *ebpf.Map, adopted bool, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, false, fmt.Errorf("datapath: pin dir: %w", err)
	}
	fspec := spec.Maps[abi.NetpolMapNpFqdn].Copy()
	fspec.Pinning = ebpf.PinNone
	lspec := &ebpf.MapSpec{Name: "np_fqdn_legend", Type: ebpf.Hash, KeySize: 4, ValueSize: sha256.Size, MaxEntries: fspec.MaxEntries}
	fpath, lpath := filepath.Join(dir, pinFQDN), filepath.Join(dir, pinLegend)
	fqdn, ferr := ebpf.LoadPinnedMap(fpath, nil)
	legend, lerr := ebpf.LoadPinnedMap(lpath, nil)
	if ferr == nil && lerr == nil && fspec.Compatible(fqdn) == nil && lspec.Compatible(legend) == nil {
		return fqdn, legend, true, nil
	}
	for _, m := range []*ebpf.Map{fqdn, legend} {
		if m != nil {
			m.Close()
		}
	}
	for _, p := range []string{fpath, lpath} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, nil, false, fmt.Errorf("datapath: remove stale pin: %w", err)
		}
	}
	if fqdn, err = ebpf.NewMap(fspec); err != nil {
		return nil, nil, false, fmt.Errorf("datapath: create %s: %w", pinFQDN, err)
	}
	if legend, err = ebpf.NewMap(lspec); err != nil {
		fqdn.Close()
		return nil, nil, false, fmt.Errorf("datapath: create %s: %w", pinLegend, err)
	}
	for _, x := range []struct {
		m *ebpf.Map
		p string
	}{{fqdn, fpath}, {legend, lpath}} {
		if err := x.m.Pin(x.p); err != nil {
			fqdn.Close()
			legend.Close()
			return nil, nil, false, fmt.Errorf("datapath: pin %s: %w", x.p, err)
		}
	}
	return fqdn, legend, false, nil
}

// reconcileLearned carries the learned addresses of an earlier run over to
// this run's identity numbers: each entry's local identity and each slot's
// identity are looked up in the legend and mapped to the number the same
// description has now; entries of a local identity that is gone, slots of
// a name identity that is gone, and expired slots are dropped. It runs
// before the first Apply maps any cgroup, so no program reads an entry in
// between. It returns how many entries it kept and dropped.
func (d *Datapath) reconcileLearned(keys map[uint32]string) (kept, dropped int, err error) {
	now := make(map[legendDigest]uint32, len(keys))
	for id, k := range keys {
		now[sha256.Sum256([]byte(k))] = id
	}
	old := map[uint32]uint32{}
	var id uint32
	var dg legendDigest
	it := d.legend.Iterate()
	for it.Next(&id, &dg) {
		if n, ok := now[dg]; ok {
			old[id] = n
		}
	}
	if err := it.Err(); err != nil {
		return 0, 0, fmt.Errorf("datapath: read %s: %w", pinLegend, err)
	}
	type entry struct {
		k abi.NetpolFqdnKey
		v abi.NetpolFqdnValue
	}
	var all []entry
	var e entry
	fit := d.objs.NpFqdn.Iterate()
	for fit.Next(&e.k, &e.v) {
		all = append(all, e)
	}
	if err := fit.Err(); err != nil {
		return 0, 0, fmt.Errorf("datapath: read %s: %w", pinFQDN, err)
	}
	t := monotonicNow()
	for _, e := range all {
		if err := d.objs.NpFqdn.Delete(e.k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return kept, dropped, fmt.Errorf("datapath: reconcile %s: %w", pinFQDN, err)
		}
		local, ok := old[e.k.Local]
		var v abi.NetpolFqdnValue
		n := 0
		for _, s := range e.v.Slot {
			if id, known := old[s.Identity]; known && ok && s.ExpiresNs > t {
				s.Identity = id
				v.Slot[n] = s
				n++
			}
		}
		if n == 0 {
			dropped++
			continue
		}
		e.k.Local = local
		if err := d.objs.NpFqdn.Put(e.k, v); err != nil {
			return kept, dropped, fmt.Errorf("datapath: reconcile %s: %w", pinFQDN, err)
		}
		kept++
	}
	return kept, dropped, nil
}

// writeLegend records the description of every identity number of this
// run; numbers gone are removed. The kernel's legend is read once (it may
// hold an earlier run's numbers), then kept in step with legendWritten.
func (d *Datapath) writeLegend(keys map[uint32]string) error {
	if !d.legendRead {
		var id uint32
		var dg legendDigest
		it := d.legend.Iterate()
		var stale []uint32
		for it.Next(&id, &dg) {
			stale = append(stale, id)
		}
		if err := it.Err(); err != nil {
			return fmt.Errorf("datapath: read %s: %w", pinLegend, err)
		}
		for _, id := range stale {
			if err := d.legend.Delete(id); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("datapath: write %s: %w", pinLegend, err)
			}
		}
		d.legendRead = true
	}
	for id := range d.legendWritten {
		if _, ok := keys[id]; !ok {
			if err := d.legend.Delete(id); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("datapath: write %s: %w", pinLegend, err)
			}
			delete(d.legendWritten, id)
		}
	}
	for id, k := range keys {
		if d.legendWritten[id] == k {
			continue
		}
		if err := d.legend.Put(id, legendDigest(sha256.Sum256([]byte(k)))); err != nil {
			return fmt.Errorf("datapath: write %s: %w", pinLegend, err)
		}
		d.legendWritten[id] = k
	}
	return nil
}

// RemovePinned removes the learned DNS state an agent keeps in dir (an
// uninstall): the next agent starts learning afresh. It returns how many
// pins it removed; a dir that does not exist holds none.
func RemovePinned(dir string) (int, error) {
	n := 0
	for _, name := range []string{pinFQDN, pinLegend} {
		err := os.Remove(filepath.Join(dir, name))
		switch {
		case err == nil:
			n++
		case !errors.Is(err, os.ErrNotExist):
			return n, fmt.Errorf("remove DNS state: %w", err)
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return n, fmt.Errorf("remove DNS state: %s holds more than Vigil's pins: %w", dir, err)
	}
	return n, nil
}
