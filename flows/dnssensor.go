package flows

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/vigilsec/vigil/kprobes"
	"github.com/vigilsec/vigil/kprobes/abi"
	"github.com/vigilsec/vigil/process"
)

// DNSSensor copies the head of every DNS message local sockets send to
// port 53 or receive from it into the process sensor's ring buffer
// (dnsvis.bpf.c), for DNSDecoder.
type DNSSensor struct {
	coll  *ebpf.Collection
	links []link.Link
}

// DNSSensorStats are the programs' counters.
type DNSSensorStats struct {
	// Packets copied to the ring buffer.
	Packets uint64
	// Cut: messages longer than the capture, copied up to it.
	Cut uint64
	// Lost: packets the ring buffer had no room for.
	Lost uint64
}

// NewDNSSensor loads the DNS visibility programs and attaches them at
// cgroupRoot (alongside any other program there): cgroup_skb ingress and
// egress, and the connect and sendmsg hooks that note which process owns a
// socket talking to port 53.
func NewDNSSensor(proc *process.Sensor, cgroupRoot string) (_ *DNSSensor, err error) {
	if cgroupRoot == "" {
		return nil, errors.New("dns visibility: no cgroup v2 hierarchy is mounted")
	}
	spec, err := abi.LoadDnsvis()
	if err != nil {
		return nil, fmt.Errorf("load DNS visibility object: %w", err)
	}
	if err := spec.Variables[abi.DnsvisVarAgentTgid].Set(uint32(os.Getpid())); err != nil {
		return nil, err
	}
	repl := proc.ShareMaps(spec)
	attachTypes := map[string]ebpf.AttachType{}
	for name, ps := range spec.Programs {
		attachTypes[name] = ps.AttachType
	}
	coll, err := kprobes.LoadCollection(spec, ebpf.CollectionOptions{MapReplacements: repl})
	if err != nil {
		return nil, fmt.Errorf("load DNS visibility programs: %w", kprobes.VerifierHint(err))
	}
	s := &DNSSensor{coll: coll}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	for name, prog := range coll.Programs {
		l, err := link.AttachCgroup(link.CgroupOptions{Path: cgroupRoot, Attach: attachTypes[name], Program: prog})
		if err != nil {
			return nil, fmt.Errorf("attach %s at %s: %w", name, cgroupRoot, err)
		}
		s.links = append(s.links, l)
	}
	return s, nil
}

// Stats sums the programs' per-CPU counters.
func (s *DNSSensor) Stats() (DNSSensorStats, error) {
	var st DNSSensorStats
	m := s.coll.Maps[abi.DnsvisMapDnsvisStats]
	for stat, dst := range map[abi.DNSStat]*uint64{
		abi.DnsvisDnsvisStatDNSVIS_STAT_PACKETS: &st.Packets,
		abi.DnsvisDnsvisStatDNSVIS_STAT_CUT:     &st.Cut,
		abi.DnsvisDnsvisStatDNSVIS_STAT_LOST:    &st.Lost,
	} {
		var per []uint64
		if err := m.Lookup(uint32(stat), &per); err != nil {
			return st, fmt.Errorf("dns visibility counters: %w", err)
		}
		for _, v := range per {
			*dst += v
		}
	}
	return st, nil
}

// Close detaches and unloads the programs.
func (s *DNSSensor) Close() error {
	var errs []error
	for _, l := range s.links {
		errs = append(errs, l.Close())
	}
	s.links = nil
	if s.coll != nil {
		s.coll.Close()
		s.coll = nil
	}
	return errors.Join(errs...)
}
