package flows

import (
	"net/netip"
	"sync/atomic"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/kprobes/abi"
	"github.com/vigilsec/vigil/observer"
	"github.com/vigilsec/vigil/process"
)

// Endpoints says who an address belongs to.
type Endpoints interface {
	// Remote fills ep for a remote address: a known pod (identity,
	// namespace, name, labels, workloads), a policy CIDR, or the world.
	Remote(addr netip.Addr, ep *event.Endpoint)
	// Local fills ep for the local end of a socket of a process whose pod
	// (possibly nil) and cgroup are given.
	Local(pod *event.Pod, cgroupID uint64, addr netip.Addr, ep *event.Endpoint)
}

// Decoder turns flow records into events. One goroutine uses it.
type Decoder struct {
	cache *process.Cache
	sink  process.Sink
	eps   Endpoints
	folds *Folds
	names *Names
	ev    event.Event
	flow  event.Flow
	// Errors counts records too short to decode.
	Errors uint64
}

// NewDecoder returns a decoder; eps may be nil (endpoints then carry only
// what the process's pod says, and remote ends are the world).
func NewDecoder(cache *process.Cache, sink process.Sink, eps Endpoints) *Decoder {
	return &Decoder{cache: cache, sink: sink, eps: eps}
}

// Fold makes the decoder count repeated flows into folds instead of
// reporting each (nil: report every flow). Run folds' sweep too; the
// decoder's Endpoints are then also used from the sweep's goroutine.
func (d *Decoder) Fold(folds *Folds) {
	d.folds = folds
	if folds != nil {
		folds.refresh = d.refreshReport
	}
}

// Names makes the decoder give flows to an address the local end resolved
// the names it resolved (Hubble's destination_names); nil: none.
func (d *Decoder) Names(n *Names) { d.names = n }

// refreshReport gives the report of a run whose process had no pod yet (the
// first connections of a new container, decoded before its pod was known)
// the pod its process has now, and the local endpoint that goes with it, as
// the hold stage gives the run's first flow.
func (d *Decoder) refreshReport(ev *event.Event) {
	p, f := ev.Process, ev.Flow
	if p == nil || p.Pod != nil || f == nil {
		return
	}
	cur, parent := d.cache.Get(p.PID)
	if cur == nil || cur.ExecID != p.ExecID || cur.Pod == nil {
		return
	}
	ev.Process, ev.Parent = cur, parent
	local, addr := &f.SourceEndpoint, f.Source
	if f.Direction == event.DirectionIngress {
		local, addr = &f.DestEndpoint, f.Destination
	}
	*local = event.Endpoint{}
	eps := d.eps
	if eps == nil {
		eps = NodeEndpoints{}
	}
	eps.Local(cur.Pod, cur.CgroupID, addr, local)
}

// Handle decodes one flow record from the shared ring buffer.
func (d *Decoder) Handle(rec []byte) error {
	r, err := abi.Flow(rec)
	if err != nil {
		d.Errors++
		return err
	}
	local := addrFrom16(r.Local, r.Family)
	remote := addrFrom16(r.Remote, r.Family)

	proc, parent := d.cache.Get(r.Hdr.Pid)
	d.flow = event.Flow{
		Verdict:  event.VerdictForwarded,
		Protocol: r.Protocol,
		Count:    1,
	}
	f := &d.flow
	switch r.Phase {
	case uint8(abi.FlowFlowPhaseFLOW_END):
		f.Phase = event.FlowEnd
		f.BytesSent, f.BytesReceived = r.BytesSent, r.BytesReceived
		f.PacketsSent, f.PacketsReceived = r.PacketsSent, r.PacketsReceived
		if r.Protocol == event.ProtoTCP {
			f.TCPFlags = event.TCPFIN
		}
	default:
		f.Phase = event.FlowStart
		if r.Protocol == event.ProtoTCP {
			f.TCPFlags = event.TCPSYN
		}
	}
	var localEP, remoteEP *event.Endpoint
	if r.Direction == uint8(abi.FlowFlowDirectionFLOW_INGRESS) {
		// The remote end opened the connection: it is the source.
		f.Direction = event.DirectionIngress
		f.Source, f.SourcePort = remote, r.RemotePort
		f.Destination, f.DestinationPort = local, r.LocalPort
		localEP, remoteEP = &f.DestEndpoint, &f.SourceEndpoint
	} else {
		f.Direction = event.DirectionEgress
		f.Source, f.SourcePort = local, r.LocalPort
		f.Destination, f.DestinationPort = remote, r.RemotePort
		localEP, remoteEP = &f.SourceEndpoint, &f.DestEndpoint
	}
	var pod *event.Pod
	if proc != nil {
		pod = proc.Pod
	}
	eps := d.eps
	if eps == nil {
		eps = NodeEndpoints{}
	}
	eps.Local(pod, r.CgroupId, local, localEP)
	eps.Remote(remote, remoteEP)
	now := d.cache.Clock().Wall(r.Hdr.Ktime)
	if d.names != nil && f.Direction == event.DirectionEgress {
		f.DestinationNames = d.names.Lookup(OwnerOf(pod, r.CgroupId), remote, now)
	}
	d.ev = event.Event{
		Type:    event.TypeFlow,
		Time:    now,
		Process: proc,
		Parent:  parent,
		Flow:    f,
	}
	if d.folds.add(&d.ev, f, r.Hdr.Pid) {
		return nil
	}
	d.sink.Export(&d.ev)
	return nil
}

// addrFrom16 returns the address of a 16-byte field (IPv4 v4-mapped).
func addrFrom16(a [16]uint8, family uint8) netip.Addr {
	addr := netip.AddrFrom16(a)
	if family == 4 {
		return addr.Unmap()
	}
	return addr
}

// Reserved identities, as the network policy engine numbers them.
const (
	IdentityHost      = 1
	IdentityWorldIPv4 = 2
	IdentityWorldIPv6 = 3
)

// NodeEndpoints resolves endpoints without knowledge of other pods: the
// local end is its process's pod or the host, a remote loopback address is
// the host, any other remote address is the world.
type NodeEndpoints struct{}

func (NodeEndpoints) Local(pod *event.Pod, _ uint64, _ netip.Addr, ep *event.Endpoint) {
	if pod != nil {
		FillFromPod(ep, pod)
		return
	}
	Reserved(ep, IdentityHost, "reserved:host")
}

func (NodeEndpoints) Remote(addr netip.Addr, ep *event.Endpoint) {
	switch {
	case addr.IsLoopback():
		Reserved(ep, IdentityHost, "reserved:host")
	case addr.Is4():
		Reserved(ep, IdentityWorldIPv4, "reserved:world")
	default:
		Reserved(ep, IdentityWorldIPv6, "reserved:world")
	}
}

var reservedLabels = map[string][]string{
	"reserved:host":  {"reserved:host"},
	"reserved:world": {"reserved:world"},
}

// Reserved fills ep with a reserved identity.
func Reserved(ep *event.Endpoint, id uint32, label string) {
	ep.Identity = id
	if l, ok := reservedLabels[label]; ok {
		ep.Labels = l
	} else {
		ep.Labels = []string{label}
	}
}

// FillFromPod fills an endpoint from a pod's identity.
func FillFromPod(ep *event.Endpoint, pod *event.Pod) {
	if pod == nil {
		return
	}
	ep.Namespace = pod.Namespace
	ep.PodName = pod.Name
	ep.Labels = make([]string, 0, len(pod.Labels))
	for _, l := range pod.Labels {
		ep.Labels = append(ep.Labels, l.Key+"="+l.Value)
	}
	if pod.Workload != "" {
		ep.Workloads = []event.Workload{{Name: pod.Workload, Kind: pod.WorkloadKind}}
	}
}

// Routes are the opcodes this decoder reads.
func (d *Decoder) Routes() []observer.Route {
	return []observer.Route{{Op: abi.OpFlow, Decode: d.Handle}}
}

// PodEndpoints resolves flow ends from the node's pods: a remote address of
// a known pod is that pod, any other is the host or the world (as
// NodeEndpoints). Safe for concurrent use; Set replaces the pods at once.
type PodEndpoints struct {
	byIP atomic.Pointer[map[netip.Addr]*event.Pod]
}

var _ Endpoints = (*PodEndpoints)(nil)

// Set makes pods (by address, IPv4 unmapped) the known pods.
func (e *PodEndpoints) Set(pods map[netip.Addr]*event.Pod) { e.byIP.Store(&pods) }

func (e *PodEndpoints) Local(pod *event.Pod, cg uint64, addr netip.Addr, ep *event.Endpoint) {
	NodeEndpoints{}.Local(pod, cg, addr, ep)
}

func (e *PodEndpoints) Remote(addr netip.Addr, ep *event.Endpoint) {
	if m := e.byIP.Load(); m != nil {
		if pod := (*m)[addr.Unmap()]; pod != nil {
			FillFromPod(ep, pod)
			return
		}
	}
	NodeEndpoints{}.Remote(addr, ep)
}
