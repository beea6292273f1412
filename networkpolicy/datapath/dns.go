package datapath

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/dns"
	"github.com/vigilsec/vigil/kprobes/abi"
	"github.com/vigilsec/vigil/networkpolicy"
)

// Defaults of the toFQDNs part of Config.
const (
	DefaultDNSMinTTL      = 60 * time.Second
	DefaultDNSMaxIPs      = 50
	DefaultMaxFQDNEntries = 65536
	// fqdnSlots is FQDN_SLOTS of lib/dns.h: the names (of different
	// identities) one address is learned for at once.
	fqdnSlots = 4
)

// half is the size of one half of the automaton maps.
const (
	nextHalf   = dns.MaxStates * dns.NumSymbols
	acceptHalf = dns.MaxStates
)

// writeNames writes the name automaton of an engine into the half of the
// automaton maps the programs do not use, then makes them use it. A nil
// automaton (no toFQDNs) is written as one state that accepts nothing.
func (d *Datapath) writeNames(t *networkpolicy.NameTable) error {
	if t == d.names {
		return nil
	}
	a := &dns.Automaton{Next: make([]uint32, 2*dns.NumSymbols), Accept: make([]uint32, 2)}
	var setIdentity []uint32
	var setGroups []uint16
	if t != nil && t.Automaton != nil {
		a, setIdentity, setGroups = t.Automaton, t.SetIdentity, t.SetGroups
	}
	if a.States() > dns.MaxStates {
		return fmt.Errorf("datapath: the DNS name automaton has %d states (at most %d)", a.States(), dns.MaxStates)
	}
	half := 1 - d.namesHalf
	// Every state the previous use of this half had is overwritten, the
	// states beyond the new automaton with zeros.
	states := max(a.States(), d.namesStates[half])
	nextKeys := make([]uint32, 0, states*dns.NumSymbols)
	nextVals := make([]uint32, 0, states*dns.NumSymbols)
	accKeys := make([]uint32, 0, states)
	accVals := make([]uint32, 0, states)
	groupVals := make([]uint32, 0, states)
	for s := 0; s < states; s++ {
		var acc, groups uint32
		if s < a.States() {
			if set := a.Accept[s]; set != 0 {
				acc, groups = setIdentity[set-1], uint32(setGroups[set-1])
			}
		}
		accKeys = append(accKeys, uint32(half*acceptHalf+s))
		accVals = append(accVals, acc)
		groupVals = append(groupVals, groups)
		for sym := 0; sym < dns.NumSymbols; sym++ {
			var next uint32
			if s < a.States() {
				next = a.Next[s*dns.NumSymbols+sym]
			}
			nextKeys = append(nextKeys, uint32(half*nextHalf+s*dns.NumSymbols+sym))
			nextVals = append(nextVals, next)
		}
	}
	if err := putAll(d.objs.NpDnsNext, nextKeys, nextVals); err != nil {
		return fmt.Errorf("datapath: DNS name automaton: %w", err)
	}
	if err := putAll(d.objs.NpDnsAccept, accKeys, accVals); err != nil {
		return fmt.Errorf("datapath: DNS name automaton: %w", err)
	}
	if err := putAll(d.objs.NpDnsGroups, accKeys, groupVals); err != nil {
		return fmt.Errorf("datapath: DNS name automaton: %w", err)
	}
	if err := d.objs.NpDnsActive.Put(uint32(0), uint32(half)); err != nil {
		return fmt.Errorf("datapath: DNS name automaton: %w", err)
	}
	d.namesHalf, d.namesStates[half], d.names = half, a.States(), t
	return nil
}

// putAll writes array entries, in batches where the kernel has them.
func putAll(m *ebpf.Map, keys, vals []uint32) error {
	if len(keys) == 0 {
		return nil
	}
	if _, err := m.BatchUpdate(keys, vals, nil); err == nil {
		return nil
	} else if !errors.Is(err, ebpf.ErrNotSupported) {
		return err
	}
	for i := range keys {
		if err := m.Put(keys[i], vals[i]); err != nil {
			return err
		}
	}
	return nil
}

// monotonicNow is the clock of bpf_ktime_get_ns.
func monotonicNow() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

// Learned is one address a local identity learned from DNS answers, with
// the identities of the names it was learned for and when each expires.
type Learned struct {
	Local uint32
	Addr  netip.Addr
	Names []LearnedName
}

// LearnedName is one slot of a learned address.
type LearnedName struct {
	Identity uint32
	// TTL is the time left.
	TTL time.Duration
}

// Learned lists the unexpired addresses of np_fqdn.
func (d *Datapath) Learned() ([]Learned, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.loaded {
		return nil, errors.New("datapath: not loaded")
	}
	now := monotonicNow()
	var out []Learned
	var k abi.NetpolFqdnKey
	var v abi.NetpolFqdnValue
	it := d.objs.NpFqdn.Iterate()
	for it.Next(&k, &v) {
		l := Learned{Local: k.Local, Addr: netip.AddrFrom16(k.Addr).Unmap()}
		for _, s := range v.Slot {
			if s.ExpiresNs > now {
				l.Names = append(l.Names, LearnedName{Identity: s.Identity, TTL: time.Duration(s.ExpiresNs - now)})
			}
		}
		if len(l.Names) > 0 {
			out = append(out, l)
		}
	}
	return out, it.Err()
}

// SweepFQDN deletes the learned addresses whose every name expired, and
// returns how many it deleted and how many remain. Connections already
// made are not affected: the programs decide a connection once.
func (d *Datapath) SweepFQDN() (deleted, remain int, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.loaded {
		return 0, 0, errors.New("datapath: not loaded")
	}
	now := monotonicNow()
	var k abi.NetpolFqdnKey
	var v abi.NetpolFqdnValue
	var gone []abi.NetpolFqdnKey
	it := d.objs.NpFqdn.Iterate()
	for it.Next(&k, &v) {
		live := false
		for _, s := range v.Slot {
			live = live || s.ExpiresNs > now
		}
		if live {
			remain++
		} else {
			gone = append(gone, k)
		}
	}
	if err := it.Err(); err != nil {
		return 0, remain, fmt.Errorf("datapath: sweep learned addresses: %w", err)
	}
	for _, k := range gone {
		// A program may have renewed it since: delete only what is still
		// expired.
		if err := d.objs.NpFqdn.Lookup(k, &v); err != nil {
			continue
		}
		live := false
		for _, s := range v.Slot {
			live = live || s.ExpiresNs > now
		}
		if live {
			remain++
			continue
		}
		if err := d.objs.NpFqdn.Delete(k); err == nil {
			deleted++
		}
	}
	return deleted, remain, nil
}

// FQDNFill counts the learned pairs: those with a name in force, all the
// map holds, and the map's size.
func (d *Datapath) FQDNFill() (live, all, size int, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.loaded {
		return 0, 0, 0, errors.New("datapath: not loaded")
	}
	now := monotonicNow()
	var k abi.NetpolFqdnKey
	var v abi.NetpolFqdnValue
	it := d.objs.NpFqdn.Iterate()
	for it.Next(&k, &v) {
		all++
		for _, s := range v.Slot {
			if s.ExpiresNs > now {
				live++
				break
			}
		}
	}
	return live, all, int(d.objs.NpFqdn.MaxEntries()), it.Err()
}
