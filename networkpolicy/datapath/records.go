package datapath

import (
	"github.com/vigilsec/vigil/kprobes/abi"

	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/networkpolicy"
)

// Hook is the program that produced a record.
type Hook uint8

const (
	HookConnect4   = Hook(abi.NetpolNpHookNP_HOOK_CONNECT4)
	HookConnect6   = Hook(abi.NetpolNpHookNP_HOOK_CONNECT6)
	HookSendmsg4   = Hook(abi.NetpolNpHookNP_HOOK_SENDMSG4)
	HookSendmsg6   = Hook(abi.NetpolNpHookNP_HOOK_SENDMSG6)
	HookSKBIngress = Hook(abi.NetpolNpHookNP_HOOK_SKB_INGRESS)
	HookSKBEgress  = Hook(abi.NetpolNpHookNP_HOOK_SKB_EGRESS)
)

func (h Hook) String() string {
	switch h {
	case HookConnect4:
		return "connect4"
	case HookConnect6:
		return "connect6"
	case HookSendmsg4:
		return "sendmsg4"
	case HookSendmsg6:
		return "sendmsg6"
	case HookSKBIngress:
		return "skb-ingress"
	case HookSKBEgress:
		return "skb-egress"
	}
	return fmt.Sprintf("hook(%d)", uint8(h))
}

// Record is one denied or audited flow the kernel reported.
type Record struct {
	// KtimeNS is bpf_ktime_get_ns() at the decision.
	KtimeNS  uint64
	CgroupID uint64
	// PID and TGID are set when the decision ran in the process's context
	// (connect, sendmsg); packet hooks leave them 0.
	PID, TGID      uint32
	LocalIdentity  uint32
	RemoteIdentity uint32
	Verdict        networkpolicy.Verdict
	Reason         networkpolicy.Reason
	Direction      networkpolicy.Direction
	Protocol       networkpolicy.Protocol
	Hook           Hook
	Source         netip.AddrPort
	Destination    netip.AddrPort
	// Rule is the deciding rule (Rule.Policy is nil when the number is
	// unknown, which only happens for records of a rule removed meanwhile).
	RuleID uint32
	Rule   networkpolicy.RuleRef
	// Suppressed counts records of this CPU the rate limit dropped just
	// before this one.
	Suppressed uint32
}

// RecordReader reads verdict records from the kernel.
type RecordReader struct {
	rd *ringbuf.Reader
	d  *Datapath
	rr ringbuf.Record
}

// Records opens a reader; Close it to unblock Read.
func (d *Datapath) Records() (*RecordReader, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.loaded {
		return nil, errors.New("datapath: Records before Load")
	}
	rd, err := ringbuf.NewReader(d.objs.NpRecords)
	if err != nil {
		return nil, fmt.Errorf("datapath: ring buffer reader: %w", err)
	}
	return &RecordReader{rd: rd, d: d}, nil
}

// Close unblocks a pending Read.
func (r *RecordReader) Close() error { return r.rd.Close() }

// SetDeadline makes Read return os.ErrDeadlineExceeded after t.
func (r *RecordReader) SetDeadline(t time.Time) { r.rd.SetDeadline(t) }

// Read blocks until the next record.
func (r *RecordReader) Read() (Record, error) {
	if err := r.rd.ReadInto(&r.rr); err != nil {
		return Record{}, err
	}
	rec, err := DecodeRecord(r.rr.RawSample)
	if err != nil {
		return rec, err
	}
	r.d.mu.Lock()
	rec.Rule = r.d.ruleLocked(rec.RuleID)
	// connect() and sendmsg() decide before the socket has a local address.
	local, remote := &rec.Source, rec.Destination
	if rec.Direction == networkpolicy.Ingress {
		local, remote = &rec.Destination, rec.Source
	}
	if !local.Addr().IsValid() || local.Addr().IsUnspecified() {
		for _, ip := range r.d.podIPs[rec.CgroupID] {
			if ip.Is4() == remote.Addr().Is4() {
				*local = netip.AddrPortFrom(ip, local.Port())
				break
			}
		}
	}
	r.d.mu.Unlock()
	return rec, nil
}

// DecodeRecord decodes the raw bytes of one record.
func DecodeRecord(b []byte) (Record, error) {
	var raw abi.NetpolNpRecord
	if err := binary.Read(bytes.NewReader(b), binary.NativeEndian, &raw); err != nil {
		return Record{}, fmt.Errorf("datapath: short record (%d bytes): %w", len(b), err)
	}
	addr := func(a [16]byte, port uint16) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom16(a).Unmap(), port)
	}
	return Record{
		KtimeNS: raw.TimeNs, CgroupID: raw.CgroupId, PID: raw.Pid, TGID: raw.Tgid,
		LocalIdentity: raw.LocalIdentity, RemoteIdentity: raw.RemoteIdentity,
		Verdict: networkpolicy.Verdict(raw.Verdict), Reason: networkpolicy.Reason(raw.Reason),
		Direction: networkpolicy.Direction(raw.Direction), Protocol: networkpolicy.Protocol(raw.Protocol),
		Hook: Hook(raw.Hook), Source: addr(raw.SrcAddr, raw.SrcPort), Destination: addr(raw.DstAddr, raw.DstPort),
		RuleID: raw.Rule, Suppressed: raw.Suppressed,
	}, nil
}

// Flow converts the record into the flow part of a flow event. The agent
// adds the time, the process (from PID or the cgroup) and the endpoints'
// pods.
func (r Record) Flow() *event.Flow {
	f := &event.Flow{
		Phase:           event.FlowPacket,
		Source:          r.Source.Addr(),
		Destination:     r.Destination.Addr(),
		SourcePort:      r.Source.Port(),
		DestinationPort: r.Destination.Port(),
		Protocol:        uint8(r.Protocol),
		Direction:       event.Direction(r.Direction),
		Count:           1 + uint64(r.Suppressed),
	}
	switch r.Verdict {
	case networkpolicy.Deny:
		f.Verdict = event.VerdictDropped
		f.DropReasonDesc = "POLICY_DENIED"
	case networkpolicy.Audit:
		f.Verdict = event.VerdictAudit
	default:
		f.Verdict = event.VerdictForwarded
	}
	local, remote := &f.SourceEndpoint, &f.DestEndpoint
	if r.Direction == networkpolicy.Ingress {
		local, remote = remote, local
	}
	local.Identity, remote.Identity = r.LocalIdentity, r.RemoteIdentity
	if r.Rule.Policy != nil {
		name := r.Rule.Policy.String()
		switch {
		case r.Verdict == networkpolicy.Deny && r.Direction == networkpolicy.Egress:
			f.EgressDeniedBy = []string{name}
		case r.Verdict == networkpolicy.Deny:
			f.IngressDeniedBy = []string{name}
		default:
			f.PolicyNames = []string{name}
		}
	}
	f.PolicyNames = slices.Compact(f.PolicyNames)
	return f
}
