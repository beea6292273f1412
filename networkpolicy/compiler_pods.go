package networkpolicy

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/vigilsec/vigil/dns"
)

// policyRefs is what policies refer to that shapes identities: named ports
// (a pod's identity holds the ones it has), Kubernetes ipBlock prefixes
// (pod addresses in them get identities of their own) and every policy
// CIDR (each an identity).
type policyRefs struct {
	named  []string
	blocks []netip.Prefix
	cidrs  []netip.Prefix
	// fqdns are the toFQDNs patterns (each set of them a name can match
	// is an identity), ascending by String.
	fqdns []dns.Pattern
	// dnsGroups are the pattern lists of rules.dns (dnsGroupKey), and
	// dnsPats their patterns.
	dnsGroups []string
	dnsPats   []dns.Pattern
}

// dnsGroupKey names a rules.dns pattern list (sorted).
func dnsGroupKey(pats []dns.Pattern) string {
	var b strings.Builder
	for _, p := range pats {
		b.WriteString(p.String())
		b.WriteByte(' ')
	}
	return b.String()
}

// policyRefsOf returns what pols refer to, from the references of each
// policy (computed once per policy).
func (c *Compiler) policyRefsOf(pols []*Policy) policyRefs {
	if c.polRefs == nil {
		c.polRefs = map[*Policy]*policyRefs{}
	}
	in := make(map[*Policy]bool, len(pols))
	var named []string
	var blocks, cidrs []netip.Prefix
	var fqdns, dnsPats []dns.Pattern
	var groups []string
	for _, pol := range pols {
		in[pol] = true
		r := c.polRefs[pol]
		if r == nil {
			r = refsOfPolicy(pol)
			c.polRefs[pol] = r
		}
		named = append(named, r.named...)
		blocks = append(blocks, r.blocks...)
		cidrs = append(cidrs, r.cidrs...)
		fqdns = append(fqdns, r.fqdns...)
		dnsPats = append(dnsPats, r.dnsPats...)
		groups = append(groups, r.dnsGroups...)
	}
	for pol := range c.polRefs {
		if !in[pol] {
			delete(c.polRefs, pol)
		}
	}
	slices.Sort(named)
	return policyRefs{named: slices.Compact(named), blocks: sortPrefixes(blocks), cidrs: sortPrefixes(cidrs), fqdns: sortPatterns(fqdns),
		dnsGroups: slices.Compact(slices.Sorted(slices.Values(groups))), dnsPats: sortPatterns(dnsPats)}
}

// sortPatterns sorts patterns by their String and removes duplicates.
func sortPatterns(list []dns.Pattern) []dns.Pattern {
	slices.SortFunc(list, func(a, b dns.Pattern) int { return strings.Compare(a.String(), b.String()) })
	return slices.Compact(list)
}

// refsOfPolicy returns what one policy refers to.
func refsOfPolicy(pol *Policy) *policyRefs {
	named := map[string]bool{}
	blocks := map[netip.Prefix]bool{}
	cidrs := map[netip.Prefix]bool{}
	var fqdns, dnsPats []dns.Pattern
	var groups []string
	for _, sec := range pol.Sections {
		for _, r := range sec.Rules {
			for _, ps := range r.Ports {
				if len(ps.DNS) > 0 {
					groups = append(groups, dnsGroupKey(ps.DNS))
					dnsPats = append(dnsPats, ps.DNS...)
				}
				if ps.Name != "" {
					named[ps.Name] = true
				}
			}
			for _, peer := range r.Peers {
				if peer.Kind == PeerFQDN {
					fqdns = append(fqdns, peer.FQDN)
				}
				if peer.Kind != PeerCIDR {
					continue
				}
				cidrs[peer.CIDR] = true
				for _, ex := range peer.Except {
					cidrs[ex] = true
				}
				if peer.MatchPodIPs {
					blocks[peer.CIDR] = true
					for _, ex := range peer.Except {
						blocks[ex] = true
					}
				}
			}
		}
	}
	return &policyRefs{named: slices.Sorted(maps.Keys(named)),
		blocks: sortPrefixes(slices.Collect(maps.Keys(blocks))), cidrs: sortPrefixes(slices.Collect(maps.Keys(cidrs))),
		fqdns: sortPatterns(fqdns), dnsGroups: slices.Compact(slices.Sorted(slices.Values(groups))), dnsPats: sortPatterns(dnsPats)}
}

// sortPrefixes sorts prefixes and removes duplicates.
func sortPrefixes(list []netip.Prefix) []netip.Prefix {
	sort.Slice(list, func(i, j int) bool { return prefixLess(list[i], list[j]) })
	return slices.Compact(list)
}

func (r *policyRefs) equal(o *policyRefs) bool {
	return slices.Equal(r.named, o.named) && slices.Equal(r.blocks, o.blocks) && slices.Equal(r.cidrs, o.cidrs) &&
		slices.Equal(r.fqdns, o.fqdns) && slices.Equal(r.dnsGroups, o.dnsGroups) && slices.Equal(r.dnsPats, o.dnsPats)
}

func (r *policyRefs) isNamed(name string) bool {
	_, ok := slices.BinarySearch(r.named, name)
	return ok
}

// setHostIPs records the node's addresses.
func (u *update) setHostIPs(ips []netip.Addr) {
	next := map[netip.Prefix]bool{}
	for _, ip := range ips {
		next[netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen())] = true
	}
	for p := range next {
		if !u.c.hostIPs[p] {
			u.ipcache[p] = true
		}
	}
	for p := range u.c.hostIPs {
		if !next[p] {
			u.ipcache[p] = true
		}
	}
	u.c.hostIPs = next
}

// namespaces records the declared namespaces and returns those of known
// pods whose labels changed.
func (u *update) namespaces(list []*Namespace) map[string]bool {
	u.declared = map[string]labels.Set{}
	for _, ns := range list {
		set := labels.Set{}
		for k, v := range ns.Labels {
			set[k] = v
		}
		set[k8sNamespaceNameLabel] = ns.Name
		u.declared[ns.Name] = set
	}
	changed := map[string]bool{}
	for name, set := range u.c.nsLabels {
		if next := u.namespaceLabels(name); !maps.Equal(next, set) {
			changed[name] = true
			u.c.nsLabels[name] = next
		}
	}
	return changed
}

// namespaceLabels are the labels of a namespace: as declared, or only its
// name.
func (u *update) namespaceLabels(ns string) labels.Set {
	if s, ok := u.declared[ns]; ok {
		return s
	}
	return labels.Set{k8sNamespaceNameLabel: ns}
}

// setPods compiles the pods that came, went or changed (and those of
// namespaces whose labels changed).
func (u *update) setPods(pods []*Pod, keys []string, next map[string]*Pod, nsChanged map[string]bool) {
	c := u.c
	gone := map[uint32]bool{}
	for key, ps := range c.pods {
		if p, ok := next[key]; ok && !nsChanged[ps.pod.Namespace] && podEqual(p, ps.pod) {
			continue
		}
		u.pods[key] = true
		for _, id := range ps.ids {
			if c.identRefs[id]--; c.identRefs[id] == 0 {
				gone[id] = true
			}
		}
		for ip := range ps.ipIDs {
			setRemove(c.ipPods, ip, key)
			u.ipcache[netip.PrefixFrom(ip, ip.BitLen())] = true
		}
		delete(c.pods, key)
	}
	for i, p := range pods {
		key := keys[i]
		if _, ok := c.pods[key]; ok {
			continue
		}
		u.pods[key] = true
		ps := u.compilePod(p, nsChanged)
		for _, id := range ps.ids {
			c.identRefs[id]++
			delete(gone, id)
		}
		for ip := range ps.ipIDs {
			setAdd(c.ipPods, ip, key)
			u.ipcache[netip.PrefixFrom(ip, ip.BitLen())] = true
		}
		c.pods[key] = ps
	}
	// Identities no pod holds any more are gone.
	for id := range gone {
		u.old[id] = c.identities[id]
		delete(c.identities, id)
		delete(c.identRefs, id)
	}
}

// podEqual reports whether two pods are the same to policy.
func podEqual(a, b *Pod) bool {
	return a == b || (a.Namespace == b.Namespace && a.Name == b.Name && a.ServiceAccount == b.ServiceAccount &&
		a.Workload == b.Workload && a.File == b.File && a.Line == b.Line &&
		maps.Equal(a.Labels, b.Labels) && slices.Equal(a.IPs, b.IPs) && slices.Equal(a.Ports, b.Ports))
}

// compilePod computes a pod's identities, creating those that are new (or
// that a namespace relabelling renews).
func (u *update) compilePod(pod *Pod, nsChanged map[string]bool) *podState {
	c := u.c
	set := labels.Set(pod.Labels)
	if set == nil {
		set = labels.Set{}
	}
	var ports []ContainerPort
	for _, cp := range pod.Ports {
		if c.refs.isNamed(cp.Name) {
			ports = append(ports, cp)
		}
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i].Name < ports[j].Name })
	nsSet := u.namespaceLabels(pod.Namespace)
	c.nsLabels[pod.Namespace] = nsSet
	base := podIdentityKey(pod.Namespace, set, pod.ServiceAccount, ports)
	ps := &podState{pod: pod, ipIDs: map[netip.Addr]uint32{}}
	mk := func(key string, in map[netip.Prefix]bool) uint32 {
		id := c.alloc.identity(key, false)
		if !slices.Contains(ps.ids, id) {
			ps.ids = append(ps.ids, id)
		}
		cur, ok := c.identities[id]
		if ok && !(nsChanged[pod.Namespace] && !u.renewed[id]) {
			return id
		}
		cl := labels.Set{}
		for k, v := range set {
			cl[k] = v
		}
		cl[ciliumNamespaceLabel] = pod.Namespace
		cl[ciliumServiceAccountLabel] = pod.ServiceAccount
		for k, v := range nsSet {
			cl[ciliumNamespaceLabelPrefix+k] = v
		}
		c.identities[id] = &Identity{ID: id, Kind: KindPod, Namespace: pod.Namespace, Labels: set,
			ciliumLabels: cl, nsLabels: nsSet, namedPorts: ports, inBlocks: in}
		if ok {
			if _, seen := u.old[id]; !seen {
				u.old[id] = cur
			}
		}
		u.renewed[id] = true
		u.added[id] = true
		return id
	}
	ps.ep = &Endpoint{Pod: pod, Local: mk(base, nil)}
	ps.ep.Identity = ps.ep.Local
	for i, ip := range pod.IPs {
		in := map[netip.Prefix]bool{}
		for _, b := range c.refs.blocks {
			if b.Contains(ip) {
				in[b] = true
			}
		}
		id := ps.ep.Local
		if len(in) > 0 {
			id = mk(base+"|in="+fmt.Sprint(sortedPrefixStrings(in)), in)
		}
		if i == 0 {
			ps.ep.Identity, ps.ep.IP = id, ip
		}
		ps.ipIDs[ip] = id
	}
	return ps
}

// ipcacheOf returns the address table, patched where this update touched
// it.
func (u *update) ipcacheOf(prev *Engine) map[netip.Prefix]uint32 {
	c := u.c
	var out map[netip.Prefix]uint32
	if prev == nil {
		out = make(map[netip.Prefix]uint32, len(c.static)+len(c.hostIPs)+len(c.ipPods))
	} else if len(u.ipcache) == 0 {
		return prev.ipcache
	} else {
		out = maps.Clone(prev.ipcache)
	}
	for p := range u.ipcache {
		id, ok := u.prefixIdentity(p)
		old, had := out[p]
		switch {
		case ok && (!had || old != id):
			out[p] = id
		case !ok && had:
			delete(out, p)
		default:
			continue
		}
		u.delta.IPCache[p] = true
	}
	return out
}

// prefixIdentity is the identity of an ipcache prefix: a pod's address (of
// the pod with the greatest namespace/name when pods share it), else the
// node's, else a policy CIDR or a reserved range.
func (u *update) prefixIdentity(p netip.Prefix) (uint32, bool) {
	c := u.c
	if p.Bits() == p.Addr().BitLen() {
		if owners := c.ipPods[p.Addr()]; len(owners) > 0 {
			var best string
			for k := range owners {
				if k > best {
					best = k
				}
			}
			return c.pods[best].ipIDs[p.Addr()], true
		}
	}
	if c.hostIPs[p] {
		return IdentityHost, true
	}
	id, ok := c.static[p]
	return id, ok
}
