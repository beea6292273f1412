package networkpolicy

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/labels"
)

// Reserved and range-start identities. Label identities start at 256 and
// CIDR identities at 1<<24, so a number tells its kind.
const (
	// IdentityNone is never allocated; in the datapath's policy map it is
	// the wildcard remote identity.
	IdentityNone uint32 = 0
	// IdentityHost is the node itself.
	IdentityHost uint32 = 1
	// IdentityWorldIPv4 is every IPv4 address no pod or policy CIDR covers.
	IdentityWorldIPv4 uint32 = 2
	// IdentityWorldIPv6 is every IPv6 address no pod or policy CIDR covers.
	IdentityWorldIPv6 uint32 = 3
	// IdentityLocalhost is the loopback addresses (127.0.0.0/8, ::1):
	// traffic of a pod with itself, which policy never restricts.
	IdentityLocalhost uint32 = 4

	firstLabelIdentity uint32 = 256
	firstCIDRIdentity  uint32 = 1 << 24
)

var (
	worldV4    = netip.MustParsePrefix("0.0.0.0/0")
	worldV6    = netip.MustParsePrefix("::/0")
	loopbackV4 = netip.MustParsePrefix("127.0.0.0/8")
	loopbackV6 = netip.MustParsePrefix("::1/128")
)

// IdentityKind tells what an identity stands for.
type IdentityKind uint8

const (
	KindReserved IdentityKind = iota + 1
	KindPod
	KindCIDR
	// KindFQDN is the addresses a local pod learned from DNS answers for
	// names that the toFQDNs patterns of the identity (and no others)
	// match: one identity per set of patterns some name matches exactly.
	KindFQDN
)

// Identity is a numeric security identity: a set of endpoints that every
// policy treats alike. A pod's identity is its namespace and label set (with
// its service account and the named ports policies refer to); a pod address
// covered by a Kubernetes ipBlock gets a sibling identity with the same labels
// that also records which policy CIDRs contain it. Addresses outside the
// cluster get the identity of the longest policy CIDR containing them.
type Identity struct {
	ID        uint32
	Kind      IdentityKind
	Namespace string
	// Labels are the pod's labels.
	Labels labels.Set
	// Prefix is the CIDR of a CIDR identity (0.0.0.0/0 and ::/0 for the
	// world identities).
	Prefix netip.Prefix

	ciliumLabels labels.Set
	nsLabels     labels.Set
	namedPorts   []ContainerPort
	// inBlocks are the Kubernetes ipBlock prefixes (CIDRs and exceptions)
	// that contain the address this identity stands for.
	inBlocks map[netip.Prefix]bool
	// Names are the toFQDNs patterns of a KindFQDN identity (their
	// String form, ascending).
	Names []string
}

// String names the identity for people: reserved:host, cidr:192.0.2.0/24,
// or namespace:key=value,...
func (id *Identity) String() string {
	switch id.Kind {
	case KindReserved:
		switch id.ID {
		case IdentityHost:
			return "reserved:host"
		case IdentityWorldIPv4:
			return "reserved:world-ipv4"
		case IdentityWorldIPv6:
			return "reserved:world-ipv6"
		case IdentityLocalhost:
			return "reserved:localhost"
		}
	case KindCIDR:
		return "cidr:" + id.Prefix.String()
	case KindFQDN:
		return "fqdn:" + strings.Join(id.Names, ",")
	}
	s := id.Namespace + ":" + id.Labels.String()
	if len(id.inBlocks) > 0 {
		s += " (in " + strings.Join(sortedPrefixStrings(id.inBlocks), ",") + ")"
	}
	return s
}

func sortedPrefixStrings(m map[netip.Prefix]bool) []string {
	out := make([]string, 0, len(m))
	for p := range m {
		out = append(out, p.String())
	}
	sort.Strings(out)
	return out
}

// Allocator hands out identity numbers and rule numbers. Numbers stay
// stable for as long as the allocator lives, so the datapath can be updated
// incrementally: the same label set keeps its identity across compilations.
type Allocator struct {
	mu        sync.Mutex
	ids       map[string]uint32
	nextLabel uint32
	nextCIDR  uint32
	rules     map[string]uint32
	nextRule  uint32
}

// NewAllocator returns an empty allocator.
func NewAllocator() *Allocator {
	return &Allocator{
		ids:       map[string]uint32{},
		nextLabel: firstLabelIdentity,
		nextCIDR:  firstCIDRIdentity,
		rules:     map[string]uint32{},
		nextRule:  1,
	}
}

func (a *Allocator) identity(key string, cidr bool) uint32 {
	if id, ok := a.ids[key]; ok {
		return id
	}
	var id uint32
	if cidr {
		id = a.nextCIDR
		a.nextCIDR++
	} else {
		id = a.nextLabel
		a.nextLabel++
		if a.nextLabel == firstCIDRIdentity {
			panic("networkpolicy: label identity space exhausted")
		}
	}
	a.ids[key] = id
	return id
}

func (a *Allocator) rule(key string) uint32 {
	if id, ok := a.rules[key]; ok {
		return id
	}
	id := a.nextRule
	a.nextRule++
	a.rules[key] = id
	return id
}

// podIdentityKey is the canonical description of what makes pods alike.
func podIdentityKey(ns string, set labels.Set, sa string, ports []ContainerPort) string {
	var b strings.Builder
	fmt.Fprintf(&b, "pod|%s|%s|sa=%s|ports=", ns, set.String(), sa)
	for _, p := range ports {
		fmt.Fprintf(&b, "%s:%d/%d,", p.Name, p.Protocol, p.Port)
	}
	return b.String()
}

// Keys returns, for each identity number the allocator handed out, the
// description it stands for (labels and namespace of pods, a CIDR, a set
// of toFQDNs patterns). Another allocator given the same descriptions
// hands out other numbers; the descriptions say which is which, so state
// kept across a restart (learned DNS names) can be carried over.
func (a *Allocator) Keys() map[uint32]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[uint32]string, len(a.ids))
	for k, id := range a.ids {
		out[id] = k
	}
	return out
}
