package datapath

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"

	"github.com/vigilsec/vigil/kprobes/abi"
	"github.com/vigilsec/vigil/networkpolicy"
)

// HTTPConn is what the connect program kept of a connection it redirected
// to the HTTP proxy (kprobes/abi/lib/l7.h).
type HTTPConn struct {
	CgroupID      uint64
	Time          time.Duration // since boot
	PID, TGID     uint32
	LocalIdentity uint32
	// RemoteIdentity is the identity of the original destination.
	RemoteIdentity uint32
	Destination    netip.AddrPort
	// Enforce: rules.http governs the pair; Visibility: the port is
	// marked for visibility.
	Enforce, Visibility bool
}

// HTTPStats count the redirects of the connect programs and the connects
// they failed (fail closed).
type HTTPStats struct {
	Redirected                     uint64
	RefusedNoProxy, RefusedIPv6    uint64
	RefusedBind, RefusedNoFreeSlot uint64
}

// ErrNoHTTPConn means no redirected connection has that slot: it was taken
// already, or evicted because the proxy did not accept in time.
var ErrNoHTTPConn = errors.New("no redirected connection in this slot")

// SetHTTPProxy tells the connect programs the port the proxy listens on
// (127.0.0.1:port in each pod's network namespace) and the process id
// whose connects are never redirected (the proxy's own). Port 0 makes
// governed connects fail with EPERM.
func (d *Datapath) SetHTTPProxy(port uint16, tgid uint32) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.loaded {
		return errors.New("datapath: not loaded")
	}
	cfg := abi.NetpolNpL7Config{ProxyPort: uint32(port), ProxyTgid: tgid}
	if err := d.objs.NpL7Cfg.Put(uint32(0), cfg); err != nil {
		return fmt.Errorf("datapath: set HTTP proxy: %w", err)
	}
	return nil
}

// TakeHTTPConn returns and forgets the connection of a slot: the low 24
// bits of the 127.0.0.0/8 address the redirected socket was bound to.
func (d *Datapath) TakeHTTPConn(slot uint32) (HTTPConn, error) {
	d.mu.Lock()
	m := d.objs.NpL7Conns
	d.mu.Unlock()
	if m == nil {
		return HTTPConn{}, errors.New("datapath: not loaded")
	}
	var c abi.NetpolNpL7Conn
	if err := m.LookupAndDelete(slot, &c); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return HTTPConn{}, ErrNoHTTPConn
		}
		// LRU hashes support lookup-and-delete from 5.14; fall back.
		if err := m.Lookup(slot, &c); err != nil {
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				return HTTPConn{}, ErrNoHTTPConn
			}
			return HTTPConn{}, fmt.Errorf("datapath: HTTP connection slot %d: %w", slot, err)
		}
		_ = m.Delete(slot)
	}
	var ip [4]byte
	// dst_ip4 is in network order in memory.
	ip[0], ip[1], ip[2], ip[3] = byte(c.DstIp4), byte(c.DstIp4>>8), byte(c.DstIp4>>16), byte(c.DstIp4>>24)
	return HTTPConn{
		CgroupID: c.CgroupId, Time: time.Duration(c.TimeNs), PID: c.Pid, TGID: c.Tgid,
		LocalIdentity: c.LocalIdentity, RemoteIdentity: c.RemoteIdentity,
		Destination: netip.AddrPortFrom(netip.AddrFrom4(ip), c.DstPort),
		Enforce:     c.Flags&uint8(abi.NetpolNpL7FlagNP_L7ENFORCE) != 0,
		Visibility:  c.Flags&uint8(abi.NetpolNpL7FlagNP_L7VISIBILITY) != 0,
	}, nil
}

// HTTPStats reads the redirect counters, summed over CPUs.
func (d *Datapath) HTTPStats() (HTTPStats, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var st HTTPStats
	if !d.loaded {
		return st, errors.New("datapath: not loaded")
	}
	out := []*uint64{&st.Redirected, &st.RefusedNoProxy, &st.RefusedIPv6, &st.RefusedBind, &st.RefusedNoFreeSlot}
	for i, p := range out {
		var per []uint64
		if err := d.objs.NpL7Stats.Lookup(uint32(i), &per); err != nil {
			return st, fmt.Errorf("datapath: read HTTP stats: %w", err)
		}
		for _, v := range per {
			*p += v
		}
	}
	return st, nil
}

// httpRedirects are the np_l7_redirect entries an engine needs.
func (d *Datapath) httpRedirects(e *networkpolicy.Engine) map[abi.NetpolNpL7Key]uint32 {
	want := map[abi.NetpolNpL7Key]uint32{}
	governed := uint32(abi.NetpolNpL7FlagNP_L7GOVERNED)
	for _, r := range e.HTTPRedirects() {
		want[abi.NetpolNpL7Key{Local: r.Local, Remote: r.Remote, Port: r.Port}] = uint32(abi.NetpolNpL7FlagNP_L7ENFORCE)
		want[abi.NetpolNpL7Key{Port: r.Port}] |= governed
	}
	for _, p := range d.cfg.HTTPVisibility {
		want[abi.NetpolNpL7Key{Port: p}] |= governed | uint32(abi.NetpolNpL7FlagNP_L7VISIBILITY)
	}
	return want
}

// writeHTTPRedirects puts the entries that are new or changed.
func (d *Datapath) writeHTTPRedirects(want map[abi.NetpolNpL7Key]uint32) error {
	for k, v := range want {
		if old, ok := d.l7[k]; ok && old == v {
			continue
		}
		if err := d.objs.NpL7Redirect.Put(k, v); err != nil {
			return fmt.Errorf("datapath: HTTP redirect %+v: %w", k, err)
		}
		d.l7[k] = v
	}
	return nil
}

// removeHTTPRedirects deletes the entries no longer wanted.
func (d *Datapath) removeHTTPRedirects(want map[abi.NetpolNpL7Key]uint32) error {
	for k := range d.l7 {
		if _, ok := want[k]; ok {
			continue
		}
		if err := d.objs.NpL7Redirect.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("datapath: remove HTTP redirect %+v: %w", k, err)
		}
		delete(d.l7, k)
	}
	return nil
}

// CgroupAddr returns the first address of the pod owning a cgroup, as the
// last Apply knew it.
func (d *Datapath) CgroupAddr(cgroupID uint64) (netip.Addr, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ips := d.podIPs[cgroupID]
	if len(ips) == 0 {
		return netip.Addr{}, false
	}
	return ips[0], true
}
