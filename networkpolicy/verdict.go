package networkpolicy

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// Reason tells why a direction decided what it did. The values are those of
// the datapath's enum.
type Reason uint8

const (
	// ReasonNoPolicy: no policy selects the local pod in this direction.
	ReasonNoPolicy Reason = 1
	// ReasonAllowedByRule: an allow rule matched.
	ReasonAllowedByRule Reason = 2
	// ReasonDeniedByRule: a deny rule matched (deny wins over allow).
	ReasonDeniedByRule Reason = 3
	// ReasonDefaultDeny: policies select the pod and no rule allows.
	ReasonDefaultDeny Reason = 4
	// ReasonLoopback: traffic over the loopback addresses stays within the
	// pod and is never policed.
	ReasonLoopback Reason = 5
	// ReasonFromNode: the pod's node may always connect to it (kubelet
	// probes), as Kubernetes and Cilium specify.
	ReasonFromNode Reason = 6
	// ReasonDNSRefused: the port is open to the peer, but a rules.dns of
	// the rules opening it does not let the pod look the name up.
	ReasonDNSRefused Reason = 7
)

func (r Reason) String() string {
	switch r {
	case ReasonNoPolicy:
		return "no policy selects the pod"
	case ReasonAllowedByRule:
		return "allowed by rule"
	case ReasonDeniedByRule:
		return "denied by rule"
	case ReasonDefaultDeny:
		return "default deny"
	case ReasonLoopback:
		return "loopback traffic is not policed"
	case ReasonFromNode:
		return "the node may always reach its pods"
	case ReasonDNSRefused:
		return "DNS name not allowed by rules.dns"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Decision is the outcome of one direction for one local identity.
type Decision struct {
	Verdict Verdict
	Reason  Reason
	// Rules are the deciding rule numbers in ascending order; the datapath
	// records Rules[0]. Empty for ReasonNoPolicy.
	Rules []uint32
	// DNSGroups, for an allow, is the mask of the rules.dns lists that
	// restrict DNS queries of the flow (0: none does; see DecideQuery).
	DNSGroups uint16
}

// Rule returns the rule number the datapath records: the first deciding
// rule, or 0.
func (d Decision) Rule() uint32 {
	if len(d.Rules) == 0 {
		return 0
	}
	return d.Rules[0]
}

// Decide is the verdict function: what policy decides for traffic of the
// local identity in direction dir with the remote identity, protocol and
// port. For protocols without ports pass port 0; only rules that name no
// port match them.
//
// Deny rules win over allow rules. A pod that no policy selects in a
// direction is not isolated in it. Audit-mode policies never change what
// flows: the decision with enforcing policies alone is computed first; a
// drop only the audit-mode policies would add becomes Audit.
func (e *Engine) Decide(local uint32, dir Direction, remote uint32, proto Protocol, port uint16) Decision {
	lp := e.local[local]
	if lp == nil || (dir != Ingress && dir != Egress) {
		return Decision{Verdict: Allow, Reason: ReasonNoPolicy}
	}
	dp := &lp.dirs[dir]
	if dp.empty() {
		return Decision{Verdict: Allow, Reason: ReasonNoPolicy}
	}
	if remote == IdentityLocalhost {
		return Decision{Verdict: Allow, Reason: ReasonLoopback}
	}
	if remote == IdentityHost && dir == Ingress {
		return Decision{Verdict: Allow, Reason: ReasonFromNode}
	}
	remoteIdent := e.identities[remote]
	enf := dp.eval(remoteIdent, remote, proto, port, false)
	if enf.Verdict == Deny {
		return enf
	}
	all := dp.eval(remoteIdent, remote, proto, port, true)
	if all.Verdict == Deny {
		all.Verdict = Audit
		return all
	}
	return enf
}

func (dp *dirPolicy) eval(remoteIdent *Identity, remote uint32, proto Protocol, port uint16, withAudit bool) Decision {
	var ids []uint32
	dp.candidates(remote, func(r *irRule) {
		if r.deny && (withAudit || !r.audit) && r.matches(remoteIdent, proto, port) {
			ids = appendID(ids, r.id)
		}
	})
	if len(ids) > 0 {
		return Decision{Verdict: Deny, Reason: ReasonDeniedByRule, Rules: ids}
	}
	var iso []uint32
	for _, is := range dp.isolating {
		if withAudit || !is.audit {
			iso = append(iso, is.id)
		}
	}
	var mask uint16
	anyName := false
	dp.candidates(remote, func(r *irRule) {
		if r.deny || (!withAudit && r.audit) {
			return
		}
		if ok, m := r.matchDNS(remoteIdent, proto, port); ok {
			ids = appendID(ids, r.id)
			anyName = anyName || m == 0
			mask |= m
		}
	})
	if len(ids) > 0 {
		d := Decision{Verdict: Allow, Reason: ReasonAllowedByRule, Rules: ids}
		if !anyName && mask != 0 {
			if proto != ProtoUDP {
				// The datapath checks the names of queries over UDP
				// only: DNS over TCP to a restricted server is refused.
				return Decision{Verdict: Deny, Reason: ReasonDNSRefused, Rules: ids}
			}
			d.DNSGroups = mask
		}
		return d
	}
	if len(iso) == 0 {
		return Decision{Verdict: Allow, Reason: ReasonNoPolicy}
	}
	return Decision{Verdict: Deny, Reason: ReasonDefaultDeny, Rules: iso}
}

// appendID appends to an ascending list (rules are visited in id order).
func appendID(ids []uint32, id uint32) []uint32 {
	if n := len(ids); n > 0 && ids[n-1] == id {
		return ids
	}
	return append(ids, id)
}

// matches reports whether a rule that may select remote (a candidate of
// dirPolicy) matches the traffic.
func (r *irRule) matches(remoteIdent *Identity, proto Protocol, port uint16) bool {
	if r.allPorts {
		return true
	}
	if !hasPorts(proto) {
		return false
	}
	for _, pm := range r.ports {
		if pm.matches(proto, port) {
			return true
		}
	}
	for _, ps := range r.named {
		for _, pm := range resolveNamed(ps, remoteIdent) {
			if pm.matches(proto, port) {
				return true
			}
		}
	}
	return false
}

// matchDNS is matches for allow rules, also returning the mask of the
// rules.dns lists of the matching ports (0 when a matching port has none).
func (r *irRule) matchDNS(remoteIdent *Identity, proto Protocol, port uint16) (bool, uint16) {
	if r.allPorts {
		return true, 0
	}
	if !hasPorts(proto) {
		return false, 0
	}
	var mask uint16
	found := false
	for _, pm := range r.ports {
		if pm.matches(proto, port) {
			if pm.dns == 0 {
				return true, 0
			}
			found, mask = true, mask|pm.dns
		}
	}
	for _, ps := range r.named {
		for _, pm := range resolveNamed(ps, remoteIdent) {
			if pm.matches(proto, port) {
				return true, 0
			}
		}
	}
	return found, mask
}

func (pm PortMatch) matches(proto Protocol, port uint16) bool {
	return (pm.Proto == ProtoAny || pm.Proto == proto) && port >= pm.First && port <= pm.Last
}

func hasPorts(p Protocol) bool {
	return p == ProtoTCP || p == ProtoUDP || p == ProtoSCTP
}

// Result is the verdict on a flow from one endpoint to another: the egress
// side (when the source is a pod) and the ingress side (when the
// destination is a pod) must both let it through.
type Result struct {
	Verdict  Verdict
	From, To Endpoint
	Protocol Protocol
	Port     uint16
	// Query is the name of a DNS query decided with CheckQuery.
	Query string
	// Egress is nil when the source is not a pod; Ingress when the
	// destination is not.
	Egress, Ingress *Side
}

// Side is the decision of one direction with its rules named.
type Side struct {
	Decision
	Refs []RuleRef
}

// Check decides a flow between two endpoints.
func (e *Engine) Check(from, to Endpoint, proto Protocol, port uint16) Result {
	res := Result{Verdict: Allow, From: from, To: to, Protocol: proto, Port: port}
	if from.Pod != nil {
		res.Egress = e.side(e.DecideNames(from.Local, to.Identity, e.names.NameIdentities(to.Names), proto, port))
	}
	if to.Pod != nil {
		res.Ingress = e.side(e.Decide(to.Local, Ingress, from.Identity, proto, port))
	}
	res.Verdict = combine(res.Egress, res.Ingress)
	return res
}

func (e *Engine) side(d Decision) *Side {
	s := &Side{Decision: d}
	for _, id := range d.Rules {
		s.Refs = append(s.Refs, e.rules[id])
	}
	return s
}

// Rule returns the rule with the number a datapath record carries.
func (e *Engine) Rule(id uint32) (RuleRef, bool) {
	r, ok := e.rules[id]
	return r, ok
}

// Pod resolves "namespace/name" (or "name" in the default namespace).
func (e *Engine) Pod(ref string) (Endpoint, error) {
	key := ref
	if !strings.Contains(ref, "/") {
		key = "default/" + ref
	}
	ep, ok := e.pods[key]
	if !ok {
		var names []string
		for _, k := range e.podOrder {
			names = append(names, k)
		}
		hint := ""
		if len(names) > 0 {
			hint = " (known pods: " + strings.Join(names, ", ") + ")"
		}
		return Endpoint{}, fmt.Errorf("no pod %q in the manifests%s", key, hint)
	}
	return *ep, nil
}

// Pods lists the pods in namespace/name order.
func (e *Engine) Pods() []Endpoint {
	out := make([]Endpoint, 0, len(e.podOrder))
	for _, k := range e.podOrder {
		out = append(out, *e.pods[k])
	}
	return out
}

// Address resolves an address: a pod's address is that pod; any other
// address gets the identity of the longest CIDR containing it.
func (e *Engine) Address(ip netip.Addr) Endpoint {
	ip = ip.Unmap()
	for _, k := range e.podOrder {
		ep := e.pods[k]
		for _, a := range ep.Pod.IPs {
			if a == ip {
				out := *ep
				out.Identity, out.IP = e.IdentityOf(ip), ip
				return out
			}
		}
	}
	return Endpoint{IP: ip, Identity: e.IdentityOf(ip)}
}

// IdentityOf returns the identity of an address by longest prefix match over
// the ipcache (the same table the datapath uses).
func (e *Engine) IdentityOf(ip netip.Addr) uint32 {
	ip = ip.Unmap()
	for bits := ip.BitLen(); bits >= 0; bits-- {
		p, _ := ip.Prefix(bits)
		if id, ok := e.ipcache[p]; ok {
			return id
		}
	}
	if ip.Is4() {
		return IdentityWorldIPv4
	}
	return IdentityWorldIPv6
}

// IPCache returns the address table: prefixes and their identities (the
// datapath's np_ipcache). The map is shared: do not modify it.
func (e *Engine) IPCache() map[netip.Prefix]uint32 { return e.ipcache }

// NumIdentities returns how many identities there are.
func (e *Engine) NumIdentities() int { return len(e.identities) }

// Identity returns an identity by number.
func (e *Engine) Identity(id uint32) (*Identity, bool) {
	i, ok := e.identities[id]
	return i, ok
}

// Identities returns every identity in ascending order.
func (e *Engine) Identities() []*Identity {
	out := make([]*Identity, 0, len(e.identities))
	for _, i := range e.identities {
		out = append(out, i)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// LocalIdentities returns the identities that have a compiled rule set, in
// ascending order.
func (e *Engine) LocalIdentities() []uint32 {
	out := make([]uint32, 0, len(e.local))
	for id := range e.local {
		out = append(out, id)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Policies returns the compiled policies.
func (e *Engine) Policies() []*Policy { return e.policies }
