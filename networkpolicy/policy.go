package networkpolicy

import (
	"fmt"
	"net/netip"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/vigilsec/vigil/dns"
)

// Direction is the direction of traffic relative to the local pod. The
// values are those of the datapath's enum and of event.Direction.
type Direction uint8

const (
	Ingress Direction = 1
	Egress  Direction = 2
)

func (d Direction) String() string {
	switch d {
	case Ingress:
		return "ingress"
	case Egress:
		return "egress"
	}
	return fmt.Sprintf("direction(%d)", uint8(d))
}

// Verdict is what policy decides for a flow. The values are those of the
// datapath's enum and of event.Verdict.
type Verdict uint8

const (
	Allow Verdict = 1
	Deny  Verdict = 2
	// Audit is a drop that a policy in audit mode would make: the traffic
	// flows and the would-be drop is reported.
	Audit Verdict = 3
)

func (v Verdict) String() string {
	switch v {
	case Allow:
		return "ALLOWED"
	case Deny:
		return "DENIED"
	case Audit:
		return "AUDIT"
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

// Protocol is an IP protocol number. ProtoAny in a rule matches every
// protocol; in a query it stands for a protocol without ports (ICMP...).
type Protocol uint8

const (
	ProtoAny  Protocol = 0
	ProtoTCP  Protocol = 6
	ProtoUDP  Protocol = 17
	ProtoSCTP Protocol = 132
)

// portProtocols are the protocols whose ports policies can name.
var portProtocols = []Protocol{ProtoTCP, ProtoUDP, ProtoSCTP}

func (p Protocol) String() string {
	switch p {
	case ProtoAny:
		return "ANY"
	case ProtoTCP:
		return "TCP"
	case ProtoUDP:
		return "UDP"
	case ProtoSCTP:
		return "SCTP"
	}
	return fmt.Sprintf("proto-%d", uint8(p))
}

// ParseProtocol parses TCP, UDP or SCTP (case-insensitive).
func ParseProtocol(s string) (Protocol, error) {
	switch strings.ToUpper(s) {
	case "TCP":
		return ProtoTCP, nil
	case "UDP":
		return ProtoUDP, nil
	case "SCTP":
		return ProtoSCTP, nil
	}
	return 0, fmt.Errorf("unknown protocol %q (want TCP, UDP or SCTP)", s)
}

// PolicyKind is the kind of a policy document.
type PolicyKind string

const (
	KindNetworkPolicy          PolicyKind = "NetworkPolicy"
	KindCiliumPolicy           PolicyKind = "CiliumNetworkPolicy"
	KindCiliumClusterwide      PolicyKind = "CiliumClusterwideNetworkPolicy"
	annotationPolicyMode                  = "vigil.dev/policy-mode"
	policyModeAudit                       = "audit"
	policyModeEnforce                     = "enforce"
	ciliumNamespaceLabel                  = "io.kubernetes.pod.namespace"
	ciliumNamespaceLabelPrefix            = "io.cilium.k8s.namespace.labels."
	ciliumServiceAccountLabel             = "io.cilium.k8s.policy.serviceaccount"
	k8sNamespaceNameLabel                 = "kubernetes.io/metadata.name"
)

// Policy is one validated policy in the engine's own form. Kubernetes and
// Cilium policies both convert to it.
type Policy struct {
	Kind      PolicyKind
	Namespace string // empty for cluster-wide policies
	Name      string
	// Audit is set by the annotation vigil.dev/policy-mode: audit.
	Audit bool
	File  string
	Line  int

	// Subjects are the pods the policy applies to; a Cilium policy with
	// several specs has one subject per spec.
	Sections []Section
}

// Section is the part of a policy that applies to one set of pods: a
// NetworkPolicy's spec or one of a CiliumNetworkPolicy's specs.
type Section struct {
	Subject Selector
	// Isolates tells, per direction, whether the section puts the pods it
	// selects into default deny for that direction.
	Isolates [3]bool // indexed by Direction
	Rules    []*Rule
}

// String names the policy as users write it: Kind namespace/name.
func (p *Policy) String() string {
	if p.Namespace == "" {
		return fmt.Sprintf("%s %s", p.Kind, p.Name)
	}
	return fmt.Sprintf("%s %s/%s", p.Kind, p.Namespace, p.Name)
}

// Rule is one allow or deny rule of a policy section.
type Rule struct {
	Direction Direction
	Deny      bool
	// Path is the rule's field path, such as spec.ingress[0].
	Path string
	Line int
	// AnyPeer matches every remote endpoint, inside or outside the cluster.
	AnyPeer bool
	Peers   []Peer
	// Ports is empty when the rule matches every protocol and port.
	Ports []PortSpec
}

// PeerKind tells which fields of a Peer are used.
type PeerKind uint8

const (
	// PeerPods selects pods by labels, within one namespace, within
	// namespaces selected by labels, or cluster-wide.
	PeerPods PeerKind = iota + 1
	// PeerCIDR selects addresses outside the cluster, and, for Kubernetes
	// ipBlock, pod addresses too.
	PeerCIDR
	// PeerHost is the node itself.
	PeerHost
	// PeerWorld is every address outside the cluster.
	PeerWorld
	// PeerCluster is every pod and the node.
	PeerCluster
	// PeerFQDN is the addresses the local pod learned from DNS answers for
	// the names a pattern matches (toFQDNs).
	PeerFQDN
)

// Peer is one remote endpoint selector of a rule.
type Peer struct {
	Kind PeerKind

	// PeerPods: Namespace restricts to one namespace when set; Namespaces
	// (a selector over namespace labels) restricts to matching namespaces
	// when set; Pods selects pod labels (nil: every pod).
	Namespace  string
	Namespaces *Selector
	Pods       *Selector

	// PeerCIDR.
	CIDR   netip.Prefix
	Except []netip.Prefix
	// MatchPodIPs makes the block select pods whose address is in it
	// (Kubernetes ipBlock semantics; Cilium CIDR rules select only
	// addresses outside the cluster).
	MatchPodIPs bool

	// PeerFQDN.
	FQDN dns.Pattern
}

// PortSpec is one port, port range or named port of a rule.
type PortSpec struct {
	Protocol Protocol // ProtoAny: every protocol with ports
	// First and Last bound the range, inclusive. First 0 and Last 65535 is
	// every port.
	First, Last uint16
	// Name is a named port, resolved against the destination pod's
	// container ports.
	Name string
	// Path and Line locate a named port in its file (for warnings).
	Path string
	Line int
	// DNS, when set, restricts DNS queries on these ports to the names
	// the patterns match (rules.dns of the toPorts entry).
	DNS []dns.Pattern
	// HTTP, when not nil, restricts the requests on this TCP port to
	// those one of the rules matches (rules.http of the toPorts entry).
	HTTP []HTTPRule
}

// LabelView tells which labels a selector is matched against.
type LabelView uint8

const (
	// ViewPod matches the pod's own labels (Kubernetes selectors) or the
	// namespace's labels (namespaceSelector).
	ViewPod LabelView = iota
	// ViewCilium matches the pod's labels plus Cilium's derived labels:
	// io.kubernetes.pod.namespace, io.cilium.k8s.namespace.labels.* and
	// io.cilium.k8s.policy.serviceaccount.
	ViewCilium
)

// Selector is a validated label selector. A nil *Selector selects nothing
// where a selector is required; an empty one selects everything.
type Selector struct {
	sel  labels.Selector
	View LabelView
	// Namespace restricts the selector to pods of one namespace when set
	// (the namespace of a namespaced policy).
	Namespace string
	text      string
}

// String returns the selector in Kubernetes' text form.
func (s *Selector) String() string {
	if s == nil {
		return "<none>"
	}
	if s.text == "" {
		return "{}"
	}
	return s.text
}

// Matches reports whether the label set matches.
func (s *Selector) Matches(set labels.Set) bool {
	return s != nil && s.sel.Matches(set)
}

// Empty reports whether the selector selects everything.
func (s *Selector) Empty() bool { return s != nil && s.sel.Empty() }
