package networkpolicy

import (
	"fmt"
	"net/netip"
	"slices"

	"k8s.io/apimachinery/pkg/labels"
)

// RuleRef names the policy rule behind a decision. ID is the number the
// datapath stores in its verdict records.
type RuleRef struct {
	ID     uint32
	Policy *Policy
	// Path is the rule's field path (spec.ingress[0]); empty for the
	// default deny a policy puts in place for the pods it selects.
	Path        string
	Line        int
	Direction   Direction
	DefaultDeny bool
}

// String describes the rule: `CiliumNetworkPolicy default/rule1
// spec.ingress[0] (policy.yaml:12)`.
func (r RuleRef) String() string {
	if r.Policy == nil {
		return "no policy"
	}
	mode := ""
	if r.Policy.Audit {
		mode = " [audit]"
	}
	if r.DefaultDeny {
		return fmt.Sprintf("default deny %s of %s%s (%s:%d)", r.Direction, r.Policy, mode, r.Policy.File, r.Policy.Line)
	}
	return fmt.Sprintf("%s %s%s (%s:%d)", r.Policy, r.Path, mode, r.Policy.File, r.Line)
}

// PortMatch is a resolved port range of one protocol (ProtoAny: every
// protocol that has ports).
type PortMatch struct {
	Proto       Protocol
	First, Last uint16
	// dns is the bit of the rules.dns list of these ports (0: DNS
	// queries on them may ask for any name).
	dns uint16
}

// irRule is a rule compiled for one local identity: the ports it opens,
// with named ports resolved. The remote identities it selects are those
// under which its dirPolicy lists it.
type irRule struct {
	id    uint32
	deny  bool
	audit bool
	// any selects every remote identity.
	any bool
	// allPorts: the rule names no port, so it matches every protocol.
	allPorts bool
	ports    []PortMatch
	// named are egress named ports, resolved against each remote pod.
	named []PortSpec
	// src is the rule as the compiler keeps it.
	src *compiledRule
}

// dirPolicy is the IR of one local identity in one direction.
type dirPolicy struct {
	// isolating are the default-deny pseudo rules of the policies that
	// select the identity in this direction.
	isolating []isolation
	rules     []*irRule
	// The rules again, indexed: those naming each remote identity and
	// those selecting every remote, each in rule number order.
	byRemote map[uint32][]*irRule
	anyPeer  []*irRule
}

// empty reports whether no policy selects the identity in this direction.
func (dp *dirPolicy) empty() bool { return len(dp.rules) == 0 && len(dp.isolating) == 0 }

// candidates calls fn with the rules that can match remote, in rule number
// order.
func (dp *dirPolicy) candidates(remote uint32, fn func(*irRule)) {
	a, b := dp.byRemote[remote], dp.anyPeer
	for len(a) > 0 || len(b) > 0 {
		if len(b) == 0 || (len(a) > 0 && a[0].id <= b[0].id) {
			fn(a[0])
			a = a[1:]
		} else {
			fn(b[0])
			b = b[1:]
		}
	}
}

type isolation struct {
	id    uint32
	audit bool
}

// LocalPolicy is the compiled rule set of one local identity (the IR).
type LocalPolicy struct {
	Identity uint32
	dirs     [3]dirPolicy // indexed by Direction
	// namedAny: a rule for every peer names ports (resolved against each
	// remote identity).
	namedAny bool
}

// Endpoint is one side of a flow: a pod of the cluster, or an address.
type Endpoint struct {
	// Pod is set for pods; policies apply to its traffic.
	Pod *Pod
	// Local is the pod's identity as a local endpoint (its cgroups map to
	// it); zero for non-pods.
	Local uint32
	// Identity is the endpoint's identity as a remote peer: for a pod, the
	// identity of its address.
	Identity uint32
	IP       netip.Addr
	// Names are the DNS names the address was resolved from (toFQDNs
	// rules match them); for offline evaluation.
	Names []string
}

// String names the endpoint: namespace/pod or the address.
func (e Endpoint) String() string {
	if e.Pod != nil {
		return e.Pod.Key()
	}
	return e.IP.String()
}

// Engine is compiled policy: identities, the IR, and the verdict function.
// An Engine is immutable once compiled and safe for concurrent use.
type Engine struct {
	identities map[uint32]*Identity
	pods       map[string]*Endpoint
	podOrder   []string
	ipcache    map[netip.Prefix]uint32
	rules      map[uint32]RuleRef
	local      map[uint32]*LocalPolicy
	policies   []*Policy
	names      *NameTable
}

func appendIsolation(list []isolation, iso isolation) []isolation {
	for _, x := range list {
		if x.id == iso.id {
			return list
		}
	}
	return append(list, iso)
}

func prefixLess(a, b netip.Prefix) bool {
	if a.Addr().Is4() != b.Addr().Is4() {
		return a.Addr().Is4()
	}
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c < 0
	}
	return a.Bits() < b.Bits()
}

// resolveNamed returns the ports a named port means on the pods of ident.
func resolveNamed(ps PortSpec, ident *Identity) []PortMatch {
	if ident == nil || ident.Kind != KindPod {
		return nil
	}
	for _, cp := range ident.namedPorts {
		if cp.Name == ps.Name && (ps.Protocol == ProtoAny || ps.Protocol == cp.Protocol) {
			return []PortMatch{{Proto: cp.Protocol, First: cp.Port, Last: cp.Port}}
		}
	}
	return nil
}

// subjectMatches reports whether a policy section applies to the pods of a
// local identity.
func subjectMatches(s *Selector, ident *Identity) bool {
	if s.sel == nil || ident.Kind != KindPod {
		return false
	}
	if s.Namespace != "" && s.Namespace != ident.Namespace {
		return false
	}
	return s.Matches(viewLabels(s.View, ident))
}

func viewLabels(v LabelView, ident *Identity) labels.Set {
	if v == ViewCilium {
		return ident.ciliumLabels
	}
	return ident.Labels
}

// peerMatches reports whether a rule's peer selects a remote identity.
func peerMatches(p *Peer, ident *Identity) bool {
	switch p.Kind {
	case PeerPods:
		if ident.Kind != KindPod {
			return false
		}
		if p.Namespace != "" && p.Namespace != ident.Namespace {
			return false
		}
		if p.Namespaces != nil && !p.Namespaces.Matches(ident.nsLabels) {
			return false
		}
		if p.Pods == nil {
			return false
		}
		return p.Pods.Matches(viewLabels(p.Pods.View, ident))
	case PeerCIDR:
		switch ident.Kind {
		case KindCIDR, KindReserved:
			if !ident.Prefix.IsValid() {
				return false // the host
			}
			if !prefixWithin(ident.Prefix, p.CIDR) {
				return false
			}
			for _, ex := range p.Except {
				if prefixWithin(ident.Prefix, ex) {
					return false
				}
			}
			return true
		case KindPod:
			if !p.MatchPodIPs || !ident.inBlocks[p.CIDR] {
				return false
			}
			for _, ex := range p.Except {
				if ident.inBlocks[ex] {
					return false
				}
			}
			return true
		}
	case PeerHost:
		return ident.ID == IdentityHost
	case PeerWorld:
		return ident.Kind == KindCIDR || ident.ID == IdentityWorldIPv4 || ident.ID == IdentityWorldIPv6
	case PeerCluster:
		return ident.Kind == KindPod || ident.ID == IdentityHost
	case PeerFQDN:
		if ident.Kind != KindFQDN {
			return false
		}
		_, ok := slices.BinarySearch(ident.Names, p.FQDN.String())
		return ok
	}
	return false
}

// prefixWithin reports whether inner is inside outer.
func prefixWithin(inner, outer netip.Prefix) bool {
	return inner.Addr().Is4() == outer.Addr().Is4() && inner.Bits() >= outer.Bits() && outer.Contains(inner.Addr())
}
