package flows

import (
	"errors"
	"net/netip"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/kprobes/abi"
	"github.com/vigilsec/vigil/process"
)

type collect struct{ events []*event.Event }

func (c *collect) Export(ev *event.Event) { c.events = append(c.events, ev.Clone()) }

func flowRecord(r abi.FlowEvent) []byte {
	r.Hdr.Op = abi.OpFlow
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&r)), unsafe.Sizeof(r))...)
}

func addr(s string) [16]byte { return netip.MustParseAddr(s).As16() }

func newDecoder(t *testing.T, eps Endpoints) (*Decoder, *collect) {
	t.Helper()
	c, err := process.NewCache(process.Config{NodeName: "node-a"})
	if err != nil {
		t.Fatal(err)
	}
	out := &collect{}
	return NewDecoder(c, out, eps), out
}

var cmpAddr = cmpopts.EquateComparable(netip.Addr{})

func TestDecodeDirections(t *testing.T) {
	d, out := newDecoder(t, nil)
	egress := abi.FlowEvent{Phase: uint8(abi.FlowFlowPhaseFLOW_START), Direction: uint8(abi.FlowFlowDirectionFLOW_EGRESS),
		Protocol: event.ProtoTCP, Family: 4, Local: addr("::ffff:10.0.0.1"), Remote: addr("::ffff:93.184.216.34"),
		LocalPort: 40000, RemotePort: 443}
	egress.Hdr.Pid = 7
	ingress := abi.FlowEvent{Phase: uint8(abi.FlowFlowPhaseFLOW_END), Direction: uint8(abi.FlowFlowDirectionFLOW_INGRESS),
		Protocol: event.ProtoTCP, Family: 6, Local: addr("fd00::1"), Remote: addr("::1"),
		LocalPort: 8080, RemotePort: 51000, BytesSent: 10, BytesReceived: 20, PacketsSent: 1, PacketsReceived: 2}
	for _, r := range []abi.FlowEvent{egress, ingress} {
		if err := d.Handle(flowRecord(r)); err != nil {
			t.Fatal(err)
		}
	}
	want := []*event.Flow{{
		Phase: event.FlowStart, Verdict: event.VerdictForwarded, Protocol: event.ProtoTCP, Count: 1, TCPFlags: event.TCPSYN,
		Direction: event.DirectionEgress,
		Source:    netip.MustParseAddr("10.0.0.1"), SourcePort: 40000,
		Destination: netip.MustParseAddr("93.184.216.34"), DestinationPort: 443,
		SourceEndpoint: event.Endpoint{Identity: IdentityHost, Labels: []string{"reserved:host"}},
		DestEndpoint:   event.Endpoint{Identity: IdentityWorldIPv4, Labels: []string{"reserved:world"}},
	}, {
		Phase: event.FlowEnd, Verdict: event.VerdictForwarded, Protocol: event.ProtoTCP, Count: 1, TCPFlags: event.TCPFIN,
		Direction: event.DirectionIngress,
		Source:    netip.MustParseAddr("::1"), SourcePort: 51000,
		Destination: netip.MustParseAddr("fd00::1"), DestinationPort: 8080,
		BytesSent: 10, BytesReceived: 20, PacketsSent: 1, PacketsReceived: 2,
		SourceEndpoint: event.Endpoint{Identity: IdentityHost, Labels: []string{"reserved:host"}},
		DestEndpoint:   event.Endpoint{Identity: IdentityHost, Labels: []string{"reserved:host"}},
	}}
	var got []*event.Flow
	for _, ev := range out.events {
		if ev.Type != event.TypeFlow {
			t.Errorf("event type %v, want flow", ev.Type)
		}
		got = append(got, ev.Flow)
	}
	if diff := cmp.Diff(want, got, cmpAddr); diff != "" {
		t.Errorf("flows (-want +got):\n%s", diff)
	}
}

func TestPodEndpoints(t *testing.T) {
	server := &event.Pod{Namespace: "empire", Name: "deathstar-1", Labels: []event.Label{{Key: "org", Value: "empire"}},
		Workload: "deathstar", WorkloadKind: "Deployment"}
	var eps PodEndpoints
	eps.Set(map[netip.Addr]*event.Pod{netip.MustParseAddr("10.0.0.9"): server})
	d, out := newDecoder(t, &eps)
	r := abi.FlowEvent{Direction: uint8(abi.FlowFlowDirectionFLOW_EGRESS), Protocol: event.ProtoUDP, Family: 4,
		Local: addr("::ffff:10.0.0.1"), Remote: addr("::ffff:10.0.0.9"), RemotePort: 53}
	if err := d.Handle(flowRecord(r)); err != nil {
		t.Fatal(err)
	}
	r.Remote = addr("::ffff:10.0.0.10")
	if err := d.Handle(flowRecord(r)); err != nil {
		t.Fatal(err)
	}
	wantPod := event.Endpoint{Namespace: "empire", PodName: "deathstar-1", Labels: []string{"org=empire"},
		Workloads: []event.Workload{{Name: "deathstar", Kind: "Deployment"}}}
	if diff := cmp.Diff(wantPod, out.events[0].Flow.DestEndpoint); diff != "" {
		t.Errorf("a known pod's address (-want +got):\n%s", diff)
	}
	if got := out.events[1].Flow.DestEndpoint; got.Identity != IdentityWorldIPv4 {
		t.Errorf("an unknown address resolved to %+v, want the world", got)
	}
	if out.events[0].Flow.TCPFlags != 0 {
		t.Errorf("a UDP flow has TCP flags %v", out.events[0].Flow.TCPFlags)
	}
}

func TestDecodeShortRecord(t *testing.T) {
	d, out := newDecoder(t, nil)
	var short *abi.ShortRecordError
	if err := d.Handle(make([]byte, 20)); !errors.As(err, &short) {
		t.Errorf("short record: %v, want a ShortRecordError", err)
	}
	if d.Errors != 1 || len(out.events) != 0 {
		t.Errorf("errors %d, events %d; want 1 and 0", d.Errors, len(out.events))
	}
}
