package networkpolicy

import (
	"fmt"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/vigilsec/vigil/dns"
	"github.com/vigilsec/vigil/internal/manifest"
)

// parseCiliumPolicy decodes and validates a cilium.io/v2
// CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy.
func parseCiliumPolicy(doc *manifest.Document, clusterwide bool) (*Policy, error) {
	var cp CiliumPolicy
	p := &problems{doc: doc}
	if !p.decode(&cp) {
		cp = CiliumPolicy{}
		doc.DecodeLenient(&cp)
	}
	kind := KindCiliumPolicy
	if clusterwide {
		kind = KindCiliumClusterwide
	}
	pol := &Policy{Kind: kind, File: doc.File, Line: doc.Line}
	pol.Name, pol.Namespace = objectName(p, &cp.ObjectMeta, !clusterwide)
	pol.Audit = policyMode(p, &cp.ObjectMeta)
	if cp.Spec == nil && len(cp.Specs) == 0 {
		p.add("spec", "a policy needs spec or specs")
	}
	if cp.Spec != nil {
		pol.Sections = append(pol.Sections, ciliumSection(p, "spec", cp.Spec, pol.Namespace))
	}
	for i := range cp.Specs {
		pol.Sections = append(pol.Sections, ciliumSection(p, fmt.Sprintf("specs[%d]", i), &cp.Specs[i], pol.Namespace))
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return pol, nil
}

func unsupported(p *problems, path string, u *Unsupported, what string) {
	if u.Present() {
		p.add(path, "%s is not supported yet", what)
	}
}

func ciliumSection(p *problems, path string, r *CiliumRule, ns string) Section {
	var sec Section
	unsupported(p, path+".nodeSelector", r.NodeSelector, "nodeSelector (host policies)")
	unsupported(p, path+".log", r.Log, "log")
	if r.EndpointSelector == nil {
		if !r.NodeSelector.Present() {
			p.add(path+".endpointSelector", "endpointSelector is required")
		}
	} else if s := compileSelector(p, path+".endpointSelector", r.EndpointSelector, ViewCilium, ns); s != nil {
		sec.Subject = *s
	}
	sec.Isolates[Ingress] = len(r.Ingress) > 0 || len(r.IngressDeny) > 0
	sec.Isolates[Egress] = len(r.Egress) > 0 || len(r.EgressDeny) > 0
	if d := r.EnableDefaultDeny; d != nil {
		if d.Ingress != nil {
			sec.Isolates[Ingress] = *d.Ingress
		}
		if d.Egress != nil {
			sec.Isolates[Egress] = *d.Egress
		}
	}
	for i := range r.Ingress {
		sec.Rules = append(sec.Rules, ciliumIngress(p, fmt.Sprintf("%s.ingress[%d]", path, i), &r.Ingress[i], false, ns))
	}
	for i := range r.IngressDeny {
		sec.Rules = append(sec.Rules, ciliumIngress(p, fmt.Sprintf("%s.ingressDeny[%d]", path, i), &r.IngressDeny[i], true, ns))
	}
	for i := range r.Egress {
		sec.Rules = append(sec.Rules, ciliumEgress(p, fmt.Sprintf("%s.egress[%d]", path, i), &r.Egress[i], false, ns))
	}
	for i := range r.EgressDeny {
		sec.Rules = append(sec.Rules, ciliumEgress(p, fmt.Sprintf("%s.egressDeny[%d]", path, i), &r.EgressDeny[i], true, ns))
	}
	return sec
}

func ciliumIngress(p *problems, path string, r *CiliumIngress, deny bool, ns string) *Rule {
	rule := &Rule{Direction: Ingress, Deny: deny, Path: path, Line: p.line(path)}
	unsupported(p, path+".fromRequires", r.FromRequires, "fromRequires")
	unsupported(p, path+".fromGroups", r.FromGroups, "fromGroups")
	unsupported(p, path+".fromNodes", r.FromNodes, "fromNodes")
	unsupported(p, path+".icmps", r.ICMPs, "icmps (ICMP rules)")
	unsupported(p, path+".authentication", r.Authentication, "authentication")
	ciliumPeers(p, rule, path, "from", r.FromEndpoints, r.FromCIDR, r.FromCIDRSet, r.FromEntities, ns)
	rule.Ports = ciliumPorts(p, path+".toPorts", r.ToPorts, false, !deny)
	if len(rule.Peers) == 0 && !rule.AnyPeer && len(r.ToPorts) > 0 {
		rule.AnyPeer = true // an L4-only rule applies to every peer
	}
	return rule
}

func ciliumEgress(p *problems, path string, r *CiliumEgress, deny bool, ns string) *Rule {
	rule := &Rule{Direction: Egress, Deny: deny, Path: path, Line: p.line(path)}
	unsupported(p, path+".toServices", r.ToServices, "toServices")
	unsupported(p, path+".toRequires", r.ToRequires, "toRequires")
	unsupported(p, path+".toGroups", r.ToGroups, "toGroups")
	unsupported(p, path+".toNodes", r.ToNodes, "toNodes")
	unsupported(p, path+".icmps", r.ICMPs, "icmps (ICMP rules)")
	unsupported(p, path+".authentication", r.Authentication, "authentication")
	ciliumPeers(p, rule, path, "to", r.ToEndpoints, r.ToCIDR, r.ToCIDRSet, r.ToEntities, ns)
	if len(r.ToFQDNs) > 0 {
		switch {
		case deny:
			p.add(path+".toFQDNs", "toFQDNs cannot be used in egressDeny (DNS names only allow)")
		case len(rule.Peers) > 0 || rule.AnyPeer:
			p.add(path+".toFQDNs", "toFQDNs cannot be combined with toEndpoints, toCIDR, toCIDRSet or toEntities in one rule; write two rules")
		default:
			ciliumFQDNs(p, rule, path+".toFQDNs", r.ToFQDNs)
		}
	}
	rule.Ports = ciliumPorts(p, path+".toPorts", r.ToPorts, !deny, !deny)
	if len(rule.Peers) == 0 && !rule.AnyPeer && len(r.ToPorts) > 0 && len(r.ToFQDNs) == 0 {
		rule.AnyPeer = true
	}
	return rule
}

// ciliumFQDNs adds a peer per toFQDNs selector; each gives matchName or
// matchPattern.
func ciliumFQDNs(p *problems, rule *Rule, path string, sels []CiliumFQDN) {
	for i, s := range sels {
		spath := fmt.Sprintf("%s[%d]", path, i)
		var (
			pat dns.Pattern
			err error
		)
		switch {
		case s.MatchName != "" && s.MatchPattern != "":
			p.add(spath, "give matchName or matchPattern, not both")
			continue
		case s.MatchName != "":
			spath += ".matchName"
			pat, err = dns.ParseName(s.MatchName)
		case s.MatchPattern != "":
			spath += ".matchPattern"
			pat, err = dns.ParsePattern(s.MatchPattern)
		default:
			p.add(spath, "a toFQDNs selector needs matchName or matchPattern")
			continue
		}
		if err != nil {
			p.add(spath, "%q: %v", firstNonEmpty(s.MatchName, s.MatchPattern), err)
			continue
		}
		rule.Peers = append(rule.Peers, Peer{Kind: PeerFQDN, FQDN: pat})
	}
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func ciliumPeers(p *problems, rule *Rule, path, dir string, eps []metav1.LabelSelector, cidrs []string, sets []CiliumCIDRRule, entities []string, ns string) {
	for i := range eps {
		epath := fmt.Sprintf("%s.%sEndpoints[%d]", path, dir, i)
		scope := ns
		if selectsNamespaceLabel(&eps[i]) {
			scope = ""
		}
		if s := compileSelector(p, epath, &eps[i], ViewCilium, scope); s != nil {
			rule.Peers = append(rule.Peers, Peer{Kind: PeerPods, Namespace: scope, Pods: s})
		}
	}
	for i, c := range cidrs {
		cpath := fmt.Sprintf("%s.%sCIDR[%d]", path, dir, i)
		pre, err := parseCIDR(c)
		if err != nil {
			p.add(cpath, "%v", err)
			continue
		}
		rule.Peers = append(rule.Peers, Peer{Kind: PeerCIDR, CIDR: pre})
	}
	for i := range sets {
		spath := fmt.Sprintf("%s.%sCIDRSet[%d]", path, dir, i)
		s := &sets[i]
		unsupported(p, spath+".cidrGroupRef", s.CIDRGroupRef, "cidrGroupRef")
		unsupported(p, spath+".cidrGroupSelector", s.CIDRGroupSelector, "cidrGroupSelector")
		if s.CIDRGroupRef.Present() || s.CIDRGroupSelector.Present() {
			continue
		}
		if pre, ex, ok := ipBlock(p, spath, s.CIDR, s.Except, "cidr", "except"); ok {
			rule.Peers = append(rule.Peers, Peer{Kind: PeerCIDR, CIDR: pre, Except: ex})
		}
	}
	for i, e := range entities {
		epath := fmt.Sprintf("%s.%sEntities[%d]", path, dir, i)
		switch e {
		case "all":
			rule.AnyPeer = true
		case "world":
			rule.Peers = append(rule.Peers, Peer{Kind: PeerWorld})
		case "world-ipv4":
			rule.Peers = append(rule.Peers, Peer{Kind: PeerCIDR, CIDR: worldV4})
		case "world-ipv6":
			rule.Peers = append(rule.Peers, Peer{Kind: PeerCIDR, CIDR: worldV6})
		case "host":
			rule.Peers = append(rule.Peers, Peer{Kind: PeerHost})
		case "cluster":
			rule.Peers = append(rule.Peers, Peer{Kind: PeerCluster})
		case "remote-node", "kube-apiserver", "health", "init", "ingress", "unmanaged", "none":
			p.add(epath, "entity %q is not supported yet (supported: world, world-ipv4, world-ipv6, host, cluster, all)", e)
		default:
			p.add(epath, "unknown entity %q (supported: world, world-ipv4, world-ipv6, host, cluster, all)", e)
		}
	}
}

func ciliumPorts(p *problems, path string, rules []CiliumPortRule, dnsAllowed, httpAllowed bool) []PortSpec {
	var out []PortSpec
	for i := range rules {
		r := &rules[i]
		rpath := fmt.Sprintf("%s[%d]", path, i)
		var dnsPats []dns.Pattern
		var httpRules []HTTPRule
		if l7 := r.Rules; l7 != nil {
			if l7.HTTP != nil {
				httpRules = ciliumHTTP(p, rpath+".rules", l7, httpAllowed)
			}
			unsupported(p, rpath+".rules.kafka", l7.Kafka, "L7 Kafka rules (rules.kafka)")
			if l7.DNS != nil {
				if !dnsAllowed {
					p.add(rpath+".rules.dns", "rules.dns applies to egress allow rules only (which names a pod may look up)")
				} else if len(l7.DNS) == 0 {
					p.add(rpath+".rules.dns", "rules.dns needs at least one matchName or matchPattern")
				} else {
					var tmp Rule
					ciliumFQDNs(p, &tmp, rpath+".rules.dns", l7.DNS)
					for _, peer := range tmp.Peers {
						dnsPats = append(dnsPats, peer.FQDN)
					}
					dnsPats = sortPatterns(dnsPats)
				}
			}
			unsupported(p, rpath+".rules.l7proto", l7.L7Proto, "L7 protocol rules (rules.l7proto)")
			unsupported(p, rpath+".rules.l7", l7.L7, "generic L7 rules (rules.l7)")
		}
		unsupported(p, rpath+".terminatingTLS", r.TerminatingTLS, "terminatingTLS")
		unsupported(p, rpath+".originatingTLS", r.OriginatingTLS, "originatingTLS")
		unsupported(p, rpath+".serverNames", r.ServerNames, "serverNames")
		unsupported(p, rpath+".listener", r.Listener, "listener")
		if len(r.Ports) == 0 {
			p.add(rpath+".ports", "toPorts needs at least one port")
			continue
		}
		for j, port := range r.Ports {
			ppath := fmt.Sprintf("%s.ports[%d]", rpath, j)
			if spec, ok := ciliumPort(p, ppath, port); ok {
				if len(dnsPats) > 0 && spec.Name != "" {
					p.add(ppath+".port", "rules.dns needs port numbers, not the named port %q", spec.Name)
					continue
				}
				if httpRules != nil && !httpPort(p, ppath, spec) {
					continue
				}
				spec.DNS = dnsPats
				spec.HTTP = httpRules
				out = append(out, spec)
			}
		}
	}
	return out
}

// ciliumHTTP validates a rules.http list; it returns nil after a problem
// and an empty list for "http: []" (which Cilium reads as every request).
func ciliumHTTP(p *problems, path string, l7 *CiliumL7, allowed bool) []HTTPRule {
	switch {
	case !allowed:
		p.add(path+".http", "rules.http applies to allow rules only (ingress or egress, not ingressDeny or egressDeny)")
		return nil
	case l7.DNS != nil:
		p.add(path+".http", "rules.http and rules.dns cannot be given for the same ports")
		return nil
	}
	out := []HTTPRule{}
	ok := true
	for i := range l7.HTTP {
		r, good := parseHTTPRule(p, fmt.Sprintf("%s.http[%d]", path, i), &l7.HTTP[i])
		ok = ok && good
		out = append(out, r)
	}
	if !ok {
		return nil
	}
	if len(out) == 0 {
		out = append(out, HTTPRule{})
	}
	return out
}

// httpPort checks that a port carrying rules.http is one TCP port number:
// the proxy is told connections by port, and HTTP runs over TCP.
func httpPort(p *problems, path string, spec PortSpec) bool {
	switch {
	case spec.Protocol != ProtoTCP && spec.Protocol != ProtoAny:
		p.add(path+".protocol", "rules.http needs protocol TCP (or ANY), not %s", spec.Protocol)
	case spec.Name != "":
		p.add(path+".port", "rules.http needs a port number, not the named port %q", spec.Name)
	case spec.First == 0 && spec.Last == 65535:
		p.add(path+".port", "rules.http needs a port number (a rule for every port cannot be proxied)")
	case spec.First != spec.Last:
		p.add(path+".endPort", "rules.http needs one port, not the range %d-%d", spec.First, spec.Last)
	default:
		return true
	}
	return false
}

func ciliumPort(p *problems, path string, port CiliumPort) (PortSpec, bool) {
	spec := PortSpec{First: 0, Last: 65535}
	switch strings.ToUpper(port.Protocol) {
	case "", "ANY":
		spec.Protocol = ProtoAny
	case "TCP":
		spec.Protocol = ProtoTCP
	case "UDP":
		spec.Protocol = ProtoUDP
	case "SCTP":
		spec.Protocol = ProtoSCTP
	case "ICMP", "ICMPV6", "VRRP", "IGMP":
		p.add(path+".protocol", "protocol %s is not supported yet (supported: TCP, UDP, SCTP, ANY)", port.Protocol)
		return spec, false
	default:
		p.add(path+".protocol", "unknown protocol %q (want TCP, UDP, SCTP or ANY)", port.Protocol)
		return spec, false
	}
	s := string(port.Port)
	if s == "" || s == "0" {
		if port.EndPort != 0 {
			p.add(path+".endPort", "endPort needs port")
			return spec, false
		}
		return spec, true
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		if msgs := validation.IsValidPortName(s); len(msgs) > 0 {
			p.add(path+".port", "invalid port %q: not a number in 1-65535 nor a valid port name (%s)", s, strings.Join(msgs, "; "))
			return spec, false
		}
		if port.EndPort != 0 {
			p.add(path+".endPort", "endPort cannot be used with a named port")
			return spec, false
		}
		spec.Name, spec.Path, spec.Line = s, p.doc.FullPath(path+".port"), p.line(path+".port")
		return spec, true
	}
	if n < 1 || n > 65535 {
		p.add(path+".port", "port %d is out of range (1-65535)", n)
		return spec, false
	}
	spec.First, spec.Last = uint16(n), uint16(n)
	if port.EndPort != 0 {
		if int(port.EndPort) < n || port.EndPort > 65535 {
			p.add(path+".endPort", "endPort %d must be between port %d and 65535", port.EndPort, n)
			return spec, false
		}
		spec.Last = uint16(port.EndPort)
	}
	return spec, true
}
