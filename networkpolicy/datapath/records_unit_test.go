package datapath

import (
	"unsafe"

	"github.com/vigilsec/vigil/kprobes/abi"

	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/networkpolicy"
)

func rawRecord(t testing.TB, r abi.NetpolNpRecord) []byte {
	var b bytes.Buffer
	if err := binary.Write(&b, binary.NativeEndian, r); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDecodeRecord(t *testing.T) {
	raw := abi.NetpolNpRecord{
		TimeNs: 42, CgroupId: 7, Pid: 100, Tgid: 99, LocalIdentity: 256, RemoteIdentity: 257, Rule: 3, Suppressed: 4,
		Verdict: uint8(abi.NetpolNpVerdictNP_DENY), Reason: uint8(abi.NetpolNpReasonNP_REASON_DEFAULT_DENY),
		Direction: uint8(abi.NetpolNpDirectionNP_INGRESS), Protocol: 17, Hook: uint8(abi.NetpolNpHookNP_HOOK_SKB_INGRESS),
		SrcPort: 5353, DstPort: 53,
		SrcAddr: netip.MustParseAddr("::ffff:198.18.0.12").As16(), DstAddr: netip.MustParseAddr("2001:db8::1").As16(),
	}
	got, err := DecodeRecord(rawRecord(t, raw))
	if err != nil {
		t.Fatal(err)
	}
	want := Record{
		KtimeNS: 42, CgroupID: 7, PID: 100, TGID: 99, LocalIdentity: 256, RemoteIdentity: 257,
		Verdict: networkpolicy.Deny, Reason: networkpolicy.ReasonDefaultDeny, Direction: networkpolicy.Ingress,
		Protocol: networkpolicy.ProtoUDP, Hook: HookSKBIngress,
		Source: netip.MustParseAddrPort("198.18.0.12:5353"), Destination: netip.MustParseAddrPort("[2001:db8::1]:53"),
		RuleID: 3, Suppressed: 4,
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("record (-want +got):\n%s", diff)
	}
	pol := &networkpolicy.Policy{Kind: networkpolicy.KindNetworkPolicy, Namespace: "x", Name: "server"}
	got.Rule = networkpolicy.RuleRef{ID: 3, Policy: pol, Direction: networkpolicy.Ingress, DefaultDeny: true}
	f := got.Flow()
	wantFlow := &event.Flow{
		Phase: event.FlowPacket, Verdict: event.VerdictDropped, DropReasonDesc: "POLICY_DENIED",
		Source: netip.MustParseAddr("198.18.0.12"), Destination: netip.MustParseAddr("2001:db8::1"),
		Protocol: 17, SourcePort: 5353, DestinationPort: 53, Direction: event.DirectionIngress,
		SourceEndpoint: event.Endpoint{Identity: 257}, DestEndpoint: event.Endpoint{Identity: 256},
		IngressDeniedBy: []string{"NetworkPolicy x/server"}, Count: 5,
	}
	if diff := cmp.Diff(wantFlow, f, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("flow (-want +got):\n%s", diff)
	}
	if _, err := DecodeRecord(rawRecord(t, raw)[:20]); err == nil {
		t.Error("a short record must be an error")
	}
}

// The engine's enums and the datapath's must be the same numbers.
func TestEnumsMatchEngine(t *testing.T) {
	pairs := []struct {
		name      string
		bpf, want uint32
	}{
		{"ingress", uint32(abi.NetpolNpDirectionNP_INGRESS), uint32(networkpolicy.Ingress)},
		{"egress", uint32(abi.NetpolNpDirectionNP_EGRESS), uint32(networkpolicy.Egress)},
		{"allow", uint32(abi.NetpolNpVerdictNP_ALLOW), uint32(networkpolicy.Allow)},
		{"deny", uint32(abi.NetpolNpVerdictNP_DENY), uint32(networkpolicy.Deny)},
		{"audit", uint32(abi.NetpolNpVerdictNP_AUDIT), uint32(networkpolicy.Audit)},
		{"no policy", uint32(abi.NetpolNpReasonNP_REASON_NO_POLICY), uint32(networkpolicy.ReasonNoPolicy)},
		{"allowed by rule", uint32(abi.NetpolNpReasonNP_REASON_ALLOWED_BY_RULE), uint32(networkpolicy.ReasonAllowedByRule)},
		{"denied by rule", uint32(abi.NetpolNpReasonNP_REASON_DENIED_BY_RULE), uint32(networkpolicy.ReasonDeniedByRule)},
		{"default deny", uint32(abi.NetpolNpReasonNP_REASON_DEFAULT_DENY), uint32(networkpolicy.ReasonDefaultDeny)},
		{"event ingress", uint32(networkpolicy.Ingress), uint32(event.DirectionIngress)},
		{"event egress", uint32(networkpolicy.Egress), uint32(event.DirectionEgress)},
	}
	for _, p := range pairs {
		if p.bpf != p.want {
			t.Errorf("%s: datapath %d, engine %d", p.name, p.bpf, p.want)
		}
	}
	k := PolicyKey(networkpolicy.PolicyKey{PrefixLen: 58, Remote: 0x01020304, Direction: networkpolicy.Egress, Protocol: networkpolicy.ProtoTCP, Port: 0x0050})
	var b bytes.Buffer
	binary.Write(&b, binary.NativeEndian, k)
	if want := []byte{58, 0, 0, 0, 1, 2, 3, 4, 2, 6, 0, 0x50}; !bytes.Equal(b.Bytes(), want) {
		t.Errorf("policy key bytes % x, want % x (remote and port big endian)", b.Bytes(), want)
	}
}

// FuzzDecodeRecord builds records from arbitrary fields and checks that
// each field decodes to what was written; arbitrary bytes are refused when
// short and never panic.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(uint64(1), uint64(2), uint32(3), uint32(4), uint32(5), uint32(6), uint8(2), uint8(1), uint8(1), uint8(6), uint8(5),
		[]byte{127, 0, 0, 1}, []byte{10, 0, 0, 2}, uint16(80), uint16(443), uint32(7), uint32(0), []byte{1, 2, 3})
	f.Add(uint64(0), uint64(0), uint32(0), uint32(0), uint32(0), uint32(0), uint8(0), uint8(0), uint8(0), uint8(0), uint8(0),
		make([]byte, 16), []byte{0x20, 1, 0xd, 0xb8, 15: 1}, uint16(0), uint16(0), uint32(0), uint32(1<<31), []byte(nil))
	f.Fuzz(func(t *testing.T, ktime, cg uint64, pid, tgid, lid, rid uint32, verdict, reason, dir, proto, hook uint8,
		src, dst []byte, sport, dport uint16, rule, suppressed uint32, raw []byte) {
		r := abi.NetpolNpRecord{TimeNs: ktime, CgroupId: cg, Pid: pid, Tgid: tgid, LocalIdentity: lid, RemoteIdentity: rid,
			Verdict: verdict, Reason: reason, Direction: dir, Protocol: proto, Hook: hook,
			SrcPort: sport, DstPort: dport, Rule: rule, Suppressed: suppressed}
		srcAddr, dstAddr := addr16(src), addr16(dst)
		r.SrcAddr, r.DstAddr = srcAddr.As16(), dstAddr.As16()
		got, err := DecodeRecord(rawRecord(t, r))
		if err != nil {
			t.Fatal(err)
		}
		want := Record{KtimeNS: ktime, CgroupID: cg, PID: pid, TGID: tgid, LocalIdentity: lid, RemoteIdentity: rid,
			Verdict: networkpolicy.Verdict(verdict), Reason: networkpolicy.Reason(reason),
			Direction: networkpolicy.Direction(dir), Protocol: networkpolicy.Protocol(proto), Hook: Hook(hook),
			Source: netip.AddrPortFrom(srcAddr.Unmap(), sport), Destination: netip.AddrPortFrom(dstAddr.Unmap(), dport),
			RuleID: rule, Suppressed: suppressed}
		if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
			t.Errorf("decoded record (-want +got):\n%s", diff)
		}
		if fl := got.Flow(); fl.Count != 1+uint64(suppressed) || fl.SourcePort != sport || fl.DestinationPort != dport {
			t.Errorf("flow of the record: count %d ports %d>%d", fl.Count, fl.SourcePort, fl.DestinationPort)
		}
		if _, err := DecodeRecord(raw); err == nil && len(raw) < int(unsafe.Sizeof(r)) {
			t.Errorf("a %d-byte record was decoded", len(raw))
		}
	})
}

// addr16 makes an address of 4 or 16 fuzzed bytes (v4-mapped when 4),
// padding or cutting other lengths to 16.
func addr16(b []byte) netip.Addr {
	if len(b) == 4 {
		return netip.AddrFrom4([4]byte(b))
	}
	var a [16]byte
	copy(a[:], b)
	return netip.AddrFrom16(a)
}
