package networkpolicy

import (
	"fmt"
	"net/netip"
	"sort"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
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
}

// irRule is a rule compiled for one local identity: the remote identities it
// selects and the ports it opens, with named ports resolved.
type irRule struct {
	id    uint32
	deny  bool
	audit bool
	// any selects every remote identity.
	any     bool
	remotes map[uint32]bool
	// allPorts: the rule names no port, so it matches every protocol.
	allPorts bool
	ports    []PortMatch
	// named are egress named ports, resolved against each remote pod.
	named []PortSpec
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

// index fills byRemote and anyPeer from rules (sorted by number).
func (dp *dirPolicy) index() {
	dp.byRemote = map[uint32][]*irRule{}
	dp.anyPeer = nil
	for _, r := range dp.rules {
		if r.any {
			dp.anyPeer = append(dp.anyPeer, r)
			continue
		}
		for id := range r.remotes {
			dp.byRemote[id] = append(dp.byRemote[id], r)
		}
	}
}

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
}

// Compile builds an engine from resources. Identities and rule numbers come
// from alloc (nil: a fresh allocator), so that compiling updated resources
// with the same allocator keeps numbers stable.
func Compile(res *Resources, alloc *Allocator) (*Engine, error) {
	if alloc == nil {
		alloc = NewAllocator()
	}
	alloc.mu.Lock()
	defer alloc.mu.Unlock()
	e := &Engine{
		identities: map[uint32]*Identity{},
		pods:       map[string]*Endpoint{},
		ipcache:    map[netip.Prefix]uint32{},
		rules:      map[uint32]RuleRef{},
		local:      map[uint32]*LocalPolicy{},
		policies:   res.Policies,
	}
	nsLabels := map[string]labels.Set{}
	for _, ns := range res.Namespaces {
		set := labels.Set{}
		for k, v := range ns.Labels {
			set[k] = v
		}
		set[k8sNamespaceNameLabel] = ns.Name
		nsLabels[ns.Name] = set
	}
	namespaceLabels := func(ns string) labels.Set {
		if s, ok := nsLabels[ns]; ok {
			return s
		}
		s := labels.Set{k8sNamespaceNameLabel: ns}
		nsLabels[ns] = s
		return s
	}

	// What policies refer to: named ports and Kubernetes ipBlock prefixes.
	namedRefs := map[string]bool{}
	var blocks []netip.Prefix
	cidrs := map[netip.Prefix]bool{}
	for _, pol := range res.Policies {
		for _, sec := range pol.Sections {
			for _, r := range sec.Rules {
				for _, ps := range r.Ports {
					if ps.Name != "" {
						namedRefs[ps.Name] = true
					}
				}
				for _, peer := range r.Peers {
					if peer.Kind != PeerCIDR {
						continue
					}
					cidrs[peer.CIDR] = true
					for _, ex := range peer.Except {
						cidrs[ex] = true
					}
					if peer.MatchPodIPs {
						blocks = append(blocks, peer.CIDR)
						blocks = append(blocks, peer.Except...)
					}
				}
			}
		}
	}

	// Reserved identities.
	e.identities[IdentityHost] = &Identity{ID: IdentityHost, Kind: KindReserved}
	e.identities[IdentityWorldIPv4] = &Identity{ID: IdentityWorldIPv4, Kind: KindReserved, Prefix: worldV4}
	e.identities[IdentityWorldIPv6] = &Identity{ID: IdentityWorldIPv6, Kind: KindReserved, Prefix: worldV6}
	e.identities[IdentityLocalhost] = &Identity{ID: IdentityLocalhost, Kind: KindReserved}
	e.ipcache[worldV4] = IdentityWorldIPv4
	e.ipcache[worldV6] = IdentityWorldIPv6
	e.ipcache[loopbackV4] = IdentityLocalhost
	e.ipcache[loopbackV6] = IdentityLocalhost
	delete(cidrs, worldV4)
	delete(cidrs, worldV6)
	cidrList := make([]netip.Prefix, 0, len(cidrs))
	for c := range cidrs {
		cidrList = append(cidrList, c)
	}
	sort.Slice(cidrList, func(i, j int) bool { return prefixLess(cidrList[i], cidrList[j]) })
	for _, c := range cidrList {
		id := alloc.identity("cidr|"+c.String(), true)
		e.identities[id] = &Identity{ID: id, Kind: KindCIDR, Prefix: c}
		e.ipcache[c] = id
	}
	for _, ip := range res.HostIPs {
		e.ipcache[netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen())] = IdentityHost
	}

	// Pod identities.
	for _, pod := range res.Pods {
		set := labels.Set(pod.Labels)
		if set == nil {
			set = labels.Set{}
		}
		var ports []ContainerPort
		for _, cp := range pod.Ports {
			if namedRefs[cp.Name] {
				ports = append(ports, cp)
			}
		}
		sort.Slice(ports, func(i, j int) bool { return ports[i].Name < ports[j].Name })
		nsSet := namespaceLabels(pod.Namespace)
		base := podIdentityKey(pod.Namespace, set, pod.ServiceAccount, ports)
		mk := func(key string, in map[netip.Prefix]bool) uint32 {
			id := alloc.identity(key, false)
			if _, ok := e.identities[id]; !ok {
				cl := labels.Set{}
				for k, v := range set {
					cl[k] = v
				}
				cl[ciliumNamespaceLabel] = pod.Namespace
				cl[ciliumServiceAccountLabel] = pod.ServiceAccount
				for k, v := range nsSet {
					cl[ciliumNamespaceLabelPrefix+k] = v
				}
				e.identities[id] = &Identity{ID: id, Kind: KindPod, Namespace: pod.Namespace, Labels: set,
					ciliumLabels: cl, nsLabels: nsSet, namedPorts: ports, inBlocks: in}
			}
			return id
		}
		ep := &Endpoint{Pod: pod, Local: mk(base, nil)}
		ep.Identity = ep.Local
		for i, ip := range pod.IPs {
			in := map[netip.Prefix]bool{}
			for _, b := range blocks {
				if b.Contains(ip) {
					in[b] = true
				}
			}
			id := ep.Local
			if len(in) > 0 {
				id = mk(base+"|in="+fmt.Sprint(sortedPrefixStrings(in)), in)
			}
			if i == 0 {
				ep.Identity, ep.IP = id, ip
			}
			e.ipcache[netip.PrefixFrom(ip, ip.BitLen())] = id
		}
		e.pods[pod.Key()] = ep
		e.podOrder = append(e.podOrder, pod.Key())
	}

	// Rules: the remote set of each rule is computed once.
	type compiled struct {
		pol  *Policy
		sec  *Section
		rule *Rule
		id   uint32
		rem  map[uint32]bool
	}
	var all []compiled
	idx := newIdentityIndex(e.identities)
	defaultIDs := map[*Policy][3]uint32{}
	for _, pol := range res.Policies {
		var ids [3]uint32
		for _, d := range []Direction{Ingress, Egress} {
			ids[d] = alloc.rule(fmt.Sprintf("%s#default-%s", pol, d))
			e.rules[ids[d]] = RuleRef{ID: ids[d], Policy: pol, Direction: d, DefaultDeny: true, Line: pol.Line}
		}
		defaultIDs[pol] = ids
		for si := range pol.Sections {
			sec := &pol.Sections[si]
			for _, r := range sec.Rules {
				id := alloc.rule(fmt.Sprintf("%s#%s", pol, r.Path))
				e.rules[id] = RuleRef{ID: id, Policy: pol, Path: r.Path, Line: r.Line, Direction: r.Direction}
				c := compiled{pol: pol, sec: sec, rule: r, id: id}
				if !r.AnyPeer {
					c.rem = map[uint32]bool{}
					for _, peer := range r.Peers {
						for _, rid := range idx.candidates(&peer) {
							if !c.rem[rid] && peerMatches(&peer, e.identities[rid]) {
								c.rem[rid] = true
							}
						}
					}
				}
				all = append(all, c)
			}
		}
	}

	// The IR: for each local identity, the rules of the policies selecting it.
	for _, key := range e.podOrder {
		ep := e.pods[key]
		if _, done := e.local[ep.Local]; done {
			continue
		}
		ident := e.identities[ep.Local]
		lp := &LocalPolicy{Identity: ep.Local}
		selected := map[*Section]bool{}
		for _, pol := range res.Policies {
			for si := range pol.Sections {
				sec := &pol.Sections[si]
				if !subjectMatches(&sec.Subject, ident) {
					continue
				}
				selected[sec] = true
				for _, d := range []Direction{Ingress, Egress} {
					if sec.Isolates[d] {
						lp.dirs[d].isolating = appendIsolation(lp.dirs[d].isolating, isolation{id: defaultIDs[pol][d], audit: pol.Audit})
					}
				}
			}
		}
		for _, c := range all {
			if !selected[c.sec] {
				continue
			}
			ir := &irRule{id: c.id, deny: c.rule.Deny, audit: c.pol.Audit, any: c.rule.AnyPeer, remotes: c.rem,
				allPorts: len(c.rule.Ports) == 0}
			for _, ps := range c.rule.Ports {
				if ps.Name == "" {
					ir.ports = append(ir.ports, PortMatch{Proto: ps.Protocol, First: ps.First, Last: ps.Last})
				} else if c.rule.Direction == Ingress {
					ir.ports = append(ir.ports, resolveNamed(ps, ident)...)
				} else {
					ir.named = append(ir.named, ps)
				}
			}
			lp.dirs[c.rule.Direction].rules = append(lp.dirs[c.rule.Direction].rules, ir)
		}
		for d := range lp.dirs {
			sort.SliceStable(lp.dirs[d].rules, func(i, j int) bool { return lp.dirs[d].rules[i].id < lp.dirs[d].rules[j].id })
			sort.Slice(lp.dirs[d].isolating, func(i, j int) bool { return lp.dirs[d].isolating[i].id < lp.dirs[d].isolating[j].id })
			lp.dirs[d].index()
		}
		e.local[ep.Local] = lp
	}
	return e, nil
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
	}
	return false
}

// prefixWithin reports whether inner is inside outer.
func prefixWithin(inner, outer netip.Prefix) bool {
	return inner.Addr().Is4() == outer.Addr().Is4() && inner.Bits() >= outer.Bits() && outer.Contains(inner.Addr())
}

// identityIndex finds the identities a peer may select without trying every
// one: pod identities by label (per label view), and the others.
type identityIndex struct {
	all     []uint32
	pods    []uint32
	byLabel [2]map[string][]uint32 // LabelView -> "key=value" -> identities
}

func newIdentityIndex(ids map[uint32]*Identity) *identityIndex {
	x := &identityIndex{byLabel: [2]map[string][]uint32{{}, {}}}
	for id := range ids {
		x.all = append(x.all, id)
	}
	sort.Slice(x.all, func(i, j int) bool { return x.all[i] < x.all[j] })
	for _, id := range x.all {
		ident := ids[id]
		if ident.Kind != KindPod {
			continue
		}
		x.pods = append(x.pods, id)
		for view, set := range []labels.Set{ViewPod: ident.Labels, ViewCilium: ident.ciliumLabels} {
			for k, v := range set {
				x.byLabel[view][k+"="+v] = append(x.byLabel[view][k+"="+v], id)
			}
		}
	}
	return x
}

// candidates returns a superset of the identities peer selects.
func (x *identityIndex) candidates(p *Peer) []uint32 {
	if p.Kind != PeerPods {
		return x.all
	}
	if p.Pods == nil || p.Pods.sel == nil {
		return nil
	}
	reqs, _ := p.Pods.sel.Requirements()
	for _, r := range reqs {
		switch r.Operator() {
		case selection.Equals, selection.DoubleEquals, selection.In:
			var out []uint32
			for _, v := range r.ValuesUnsorted() {
				out = append(out, x.byLabel[p.Pods.View][r.Key()+"="+v]...)
			}
			return out
		}
	}
	return x.pods
}
