package networkpolicy

import (
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/vigilsec/vigil/internal/manifest"
)

// parseNetworkPolicy decodes and validates a networking.k8s.io/v1
// NetworkPolicy. On any problem it returns the problems and no policy.
func parseNetworkPolicy(doc *manifest.Document) (*Policy, error) {
	var np networkingv1.NetworkPolicy
	p := &problems{doc: doc}
	if !p.decode(&np) {
		np = networkingv1.NetworkPolicy{}
		doc.DecodeLenient(&np)
	}
	pol := &Policy{Kind: KindNetworkPolicy, File: doc.File, Line: doc.Line}
	pol.Name, pol.Namespace = objectName(p, &np.ObjectMeta, true)
	pol.Audit = policyMode(p, &np.ObjectMeta)

	sec := Section{}
	if s := compileSelector(p, "spec.podSelector", &np.Spec.PodSelector, ViewPod, pol.Namespace); s != nil {
		sec.Subject = *s
	}
	// policyTypes defaults to Ingress, plus Egress when egress rules exist.
	types := np.Spec.PolicyTypes
	if len(types) == 0 {
		types = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
		if len(np.Spec.Egress) > 0 {
			types = append(types, networkingv1.PolicyTypeEgress)
		}
	}
	for i, t := range types {
		path := fmt.Sprintf("spec.policyTypes[%d]", i)
		var d Direction
		switch t {
		case networkingv1.PolicyTypeIngress:
			d = Ingress
		case networkingv1.PolicyTypeEgress:
			d = Egress
		default:
			p.add(path, "unknown policy type %q (want Ingress or Egress)", t)
			continue
		}
		if sec.Isolates[d] {
			p.add(path, "duplicate policy type %q", t)
		}
		sec.Isolates[d] = true
	}
	for i := range np.Spec.Ingress {
		r := &np.Spec.Ingress[i]
		path := fmt.Sprintf("spec.ingress[%d]", i)
		rule := &Rule{Direction: Ingress, Path: path, Line: p.line(path)}
		rule.Peers, rule.AnyPeer = k8sPeers(p, path+".from", r.From, pol.Namespace)
		rule.Ports = k8sPorts(p, path+".ports", r.Ports)
		sec.Rules = append(sec.Rules, rule)
	}
	for i := range np.Spec.Egress {
		r := &np.Spec.Egress[i]
		path := fmt.Sprintf("spec.egress[%d]", i)
		rule := &Rule{Direction: Egress, Path: path, Line: p.line(path)}
		rule.Peers, rule.AnyPeer = k8sPeers(p, path+".to", r.To, pol.Namespace)
		rule.Ports = k8sPorts(p, path+".ports", r.Ports)
		sec.Rules = append(sec.Rules, rule)
	}
	// Rules of a direction the policy does not isolate have no effect
	// (Kubernetes ignores them); keep only the effective ones.
	kept := sec.Rules[:0]
	for _, r := range sec.Rules {
		if sec.Isolates[r.Direction] {
			kept = append(kept, r)
		}
	}
	sec.Rules = kept
	pol.Sections = []Section{sec}
	if err := p.err(); err != nil {
		return nil, err
	}
	return pol, nil
}

// objectName validates metadata.name and metadata.namespace; namespaced
// objects default to the namespace "default".
func objectName(p *problems, md *metav1.ObjectMeta, namespaced bool) (name, namespace string) {
	if md.Name == "" {
		p.add("metadata.name", "a name is required")
	} else if msgs := validation.IsDNS1123Subdomain(md.Name); len(msgs) > 0 {
		p.add("metadata.name", "invalid name %q: %s", md.Name, strings.Join(msgs, "; "))
	}
	if !namespaced {
		if md.Namespace != "" {
			p.add("metadata.namespace", "a cluster-wide object has no namespace")
		}
		return md.Name, ""
	}
	ns := md.Namespace
	if ns == "" {
		ns = "default"
	} else if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
		p.add("metadata.namespace", "invalid namespace %q: %s", ns, strings.Join(msgs, "; "))
	}
	return md.Name, ns
}

// policyMode reads the vigil.dev/policy-mode annotation.
func policyMode(p *problems, md *metav1.ObjectMeta) bool {
	v, ok := md.Annotations[annotationPolicyMode]
	if !ok {
		return false
	}
	switch v {
	case policyModeAudit:
		return true
	case policyModeEnforce:
		return false
	}
	p.add("metadata.annotations."+annotationPolicyMode, "unknown policy mode %q (want audit or enforce)", v)
	return false
}

func k8sPeers(p *problems, path string, peers []networkingv1.NetworkPolicyPeer, ns string) ([]Peer, bool) {
	if len(peers) == 0 {
		return nil, true
	}
	var out []Peer
	for i, peer := range peers {
		ppath := fmt.Sprintf("%s[%d]", path, i)
		switch {
		case peer.IPBlock != nil:
			if peer.PodSelector != nil || peer.NamespaceSelector != nil {
				p.add(ppath, "ipBlock cannot be combined with podSelector or namespaceSelector")
				continue
			}
			if cidr, except, ok := ipBlock(p, ppath+".ipBlock", peer.IPBlock.CIDR, peer.IPBlock.Except, "cidr", "except"); ok {
				out = append(out, Peer{Kind: PeerCIDR, CIDR: cidr, Except: except, MatchPodIPs: true})
			}
		case peer.PodSelector == nil && peer.NamespaceSelector == nil:
			p.add(ppath, "a peer needs podSelector, namespaceSelector or ipBlock")
		default:
			pe := Peer{Kind: PeerPods}
			if peer.NamespaceSelector != nil {
				pe.Namespaces = compileSelector(p, ppath+".namespaceSelector", peer.NamespaceSelector, ViewPod, "")
			} else {
				pe.Namespace = ns
			}
			if peer.PodSelector != nil {
				pe.Pods = compileSelector(p, ppath+".podSelector", peer.PodSelector, ViewPod, "")
			} else {
				pe.Pods = compileSelector(p, ppath, nil, ViewPod, "")
			}
			out = append(out, pe)
		}
	}
	return out, false
}

// ipBlock validates a CIDR and its exceptions: each exception must be a
// strict subset of the CIDR.
func ipBlock(p *problems, path, cidr string, except []string, cidrField, exceptField string) (netip.Prefix, []netip.Prefix, bool) {
	pre, err := parseCIDR(cidr)
	if err != nil {
		p.add(path+"."+cidrField, "%v", err)
		return netip.Prefix{}, nil, false
	}
	ok := true
	var ex []netip.Prefix
	for i, e := range except {
		epath := fmt.Sprintf("%s.%s[%d]", path, exceptField, i)
		ep, err := parseCIDR(e)
		if err != nil {
			p.add(epath, "%v", err)
			ok = false
			continue
		}
		if ep.Addr().Is4() != pre.Addr().Is4() || ep.Bits() <= pre.Bits() || !pre.Contains(ep.Addr()) {
			p.add(epath, "%s must be a strict subset of %s", ep, pre)
			ok = false
			continue
		}
		ex = append(ex, ep)
	}
	return pre, ex, ok
}

// parseCIDR parses an address prefix. Host bits must be zero, so that what
// the policy says is what it selects.
func parseCIDR(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, fmt.Errorf("a CIDR is required")
	}
	pre, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid CIDR %q (want an address prefix such as 192.0.2.0/24 or 2001:db8::/32)", s)
	}
	if pre.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("invalid CIDR %q: write IPv4 prefixes in dotted form", s)
	}
	if pre.Masked() != pre {
		return netip.Prefix{}, fmt.Errorf("invalid CIDR %q: host bits are set (did you mean %s?)", s, pre.Masked())
	}
	return pre, nil
}

func k8sPorts(p *problems, path string, ports []networkingv1.NetworkPolicyPort) []PortSpec {
	var out []PortSpec
	for i, port := range ports {
		ppath := fmt.Sprintf("%s[%d]", path, i)
		proto := ProtoTCP
		if port.Protocol != nil {
			switch *port.Protocol {
			case corev1.ProtocolTCP:
			case corev1.ProtocolUDP:
				proto = ProtoUDP
			case corev1.ProtocolSCTP:
				proto = ProtoSCTP
			default:
				p.add(ppath+".protocol", "unknown protocol %q (want TCP, UDP or SCTP)", *port.Protocol)
				continue
			}
		}
		spec := PortSpec{Protocol: proto, First: 0, Last: 65535}
		if port.Port == nil {
			if port.EndPort != nil {
				p.add(ppath+".endPort", "endPort needs port")
				continue
			}
			out = append(out, spec)
			continue
		}
		if port.Port.Type == intstr.String {
			name := port.Port.StrVal
			if msgs := validation.IsValidPortName(name); len(msgs) > 0 {
				p.add(ppath+".port", "invalid port name %q: %s", name, strings.Join(msgs, "; "))
				continue
			}
			if port.EndPort != nil {
				p.add(ppath+".endPort", "endPort cannot be used with a named port")
				continue
			}
			spec.Name, spec.Path, spec.Line = name, p.doc.FullPath(ppath+".port"), p.line(ppath+".port")
			out = append(out, spec)
			continue
		}
		n := port.Port.IntVal
		if n < 1 || n > 65535 {
			p.add(ppath+".port", "port %d is out of range (1-65535)", n)
			continue
		}
		spec.First, spec.Last = uint16(n), uint16(n)
		if port.EndPort != nil {
			e := *port.EndPort
			if e < n || e > 65535 {
				p.add(ppath+".endPort", "endPort %d must be between port %d and 65535", e, n)
				continue
			}
			spec.Last = uint16(e)
		}
		out = append(out, spec)
	}
	return out
}
