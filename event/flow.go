package event

import "net/netip"

// Verdict is the outcome of a flow against network policy.
type Verdict uint8

const (
	VerdictForwarded Verdict = iota + 1
	VerdictDropped
	VerdictAudit
)

func (v Verdict) String() string {
	switch v {
	case VerdictForwarded:
		return "FORWARDED"
	case VerdictDropped:
		return "DROPPED"
	case VerdictAudit:
		return "AUDIT"
	}
	return "VERDICT_UNKNOWN"
}

// Direction is the traffic direction relative to the local endpoint.
type Direction uint8

const (
	DirectionIngress Direction = iota + 1
	DirectionEgress
)

func (d Direction) String() string {
	switch d {
	case DirectionIngress:
		return "INGRESS"
	case DirectionEgress:
		return "EGRESS"
	}
	return "TRAFFIC_DIRECTION_UNKNOWN"
}

// L4 protocol numbers used by flows.
const (
	ProtoTCP  uint8 = 6
	ProtoUDP  uint8 = 17
	ProtoSCTP uint8 = 132
)

// FlowPhase tells which moment of a connection a flow event reports.
type FlowPhase uint8

const (
	FlowStart FlowPhase = iota + 1
	FlowEnd
	FlowPacket
)

// Flow is a network flow (a connection, a UDP exchange or a dropped packet)
// attributed to the process and pod that own the local socket. The process
// is in Event.Process.
type Flow struct {
	Phase           FlowPhase
	Verdict         Verdict
	DropReasonDesc  string
	Source          netip.Addr
	Destination     netip.Addr
	Protocol        uint8
	SourcePort      uint16
	DestinationPort uint16
	TCPFlags        TCPFlags
	SourceEndpoint  Endpoint
	DestEndpoint    Endpoint
	Direction       Direction
	IsReply         bool
	EgressDeniedBy  []string
	IngressDeniedBy []string
	// PolicyNames are the policies whose rules allowed or audited the flow.
	PolicyNames []string
	// Counters are filled on connection end, where cheap.
	BytesSent, BytesReceived     uint64
	PacketsSent, PacketsReceived uint64
	// Count is the number of identical drops this event stands for (rate
	// limited drop reporting).
	Count uint64
	// DestinationNames are the DNS names the local end resolved to the
	// destination address (Hubble's destination_names).
	DestinationNames []string
	// DNS is set on a DNS query or answer: the flow is then of Hubble's
	// type L7 (see dns.go).
	DNS *DNS
	// HTTP is set for a request the HTTP proxy saw (an L7 flow).
	HTTP *HTTP
}

// TCPFlags are the TCP header flags seen on a flow.
type TCPFlags uint8

const (
	TCPFIN TCPFlags = 1 << iota
	TCPSYN
	TCPRST
	TCPPSH
	TCPACK
)

// Endpoint is one side of a flow.
type Endpoint struct {
	Identity  uint32
	Namespace string
	PodName   string
	Labels    []string // "key=value", sorted
	Workloads []Workload
}

// Workload is the controller owning a pod.
type Workload struct {
	Name string
	Kind string
}
