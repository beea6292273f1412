package datapath

import (
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

func FuzzDecodeRecord(f *testing.F) {
	f.Add(rawRecord(f, abi.NetpolNpRecord{Verdict: 2, Direction: 1, Protocol: 6}))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRecord(b)
		if err != nil {
			return
		}
		r.Flow()
	})
}
