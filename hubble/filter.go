package hubble

import (
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/reflect/protoreflect"
	"k8s.io/apimachinery/pkg/labels"
)

// Filter is a compiled pair of whitelist and blacklist: a flow passes when
// it matches some whitelist filter (or the whitelist is empty) and no
// blacklist filter. Within one FlowFilter every field that is set must
// match, and a field matches when any of its values does, as in Hubble.
type Filter struct {
	allow, deny []flowMatcher
}

type flowMatcher []func(*flowpb.Flow) bool

func (m flowMatcher) match(f *flowpb.Flow) bool {
	for _, fn := range m {
		if !fn(f) {
			return false
		}
	}
	return true
}

// Match reports whether f passes the filter.
func (fl *Filter) Match(f *flowpb.Flow) bool {
	if fl == nil {
		return true
	}
	if len(fl.allow) > 0 && !slices.ContainsFunc(fl.allow, func(m flowMatcher) bool { return m.match(f) }) {
		return false
	}
	return !slices.ContainsFunc(fl.deny, func(m flowMatcher) bool { return m.match(f) })
}

// CompileFilter compiles Hubble flow filters. Errors name the list, the
// filter's index and the field, for example
// "whitelist[0].source_label[1]: ...". Fields Vigil cannot evaluate are
// refused by name, never ignored.
func CompileFilter(whitelist, blacklist []*flowpb.FlowFilter) (*Filter, error) {
	out := &Filter{}
	for i, ff := range whitelist {
		m, err := compileOne(ff)
		if err != nil {
			return nil, fmt.Errorf("whitelist[%d].%w", i, err)
		}
		out.allow = append(out.allow, m)
	}
	for i, ff := range blacklist {
		m, err := compileOne(ff)
		if err != nil {
			return nil, fmt.Errorf("blacklist[%d].%w", i, err)
		}
		out.deny = append(out.deny, m)
	}
	return out, nil
}

// unsupported are the FlowFilter fields Vigil has no data for.
var unsupported = map[protoreflect.Name]string{
	"source_ip_xlated": "Vigil does not see address translation",
	"interface":        "Vigil's flows are seen at sockets, not at interfaces",
	"node_labels":      "flows carry no node labels",
	"trace_id":         "flows carry no trace context",
	"ip_trace_id":      "flows carry no IP trace ids",
	"encrypted":        "Vigil does not see encryption",
	"experimental":     "CEL expressions are not evaluated",
}

func compileOne(ff *flowpb.FlowFilter) (flowMatcher, error) {
	var m flowMatcher
	var err error
	ff.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if why, ok := unsupported[fd.Name()]; ok {
			err = fmt.Errorf("%s: not supported: %s", fd.Name(), why)
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	add := func(fn func(*flowpb.Flow) bool) { m = append(m, fn) }
	if v := ff.GetUuid(); len(v) > 0 {
		add(func(f *flowpb.Flow) bool { return slices.Contains(v, f.GetUuid()) })
	}
	for _, side := range []struct {
		name                               string
		ips, pods, fqdns, labels, services []string
		workloads                          []*flowpb.Workload
		clusters                           []string
		identities                         []uint32
		ep                                 func(*flowpb.Flow) *flowpb.Endpoint
		ip                                 func(*flowpb.Flow) string
		names                              func(*flowpb.Flow) []string
		service                            func(*flowpb.Flow) *flowpb.Service
	}{
		{"source", ff.GetSourceIp(), ff.GetSourcePod(), ff.GetSourceFqdn(), ff.GetSourceLabel(), ff.GetSourceService(),
			ff.GetSourceWorkload(), ff.GetSourceClusterName(), ff.GetSourceIdentity(),
			(*flowpb.Flow).GetSource, func(f *flowpb.Flow) string { return f.GetIP().GetSource() },
			(*flowpb.Flow).GetSourceNames, (*flowpb.Flow).GetSourceService},
		{"destination", ff.GetDestinationIp(), ff.GetDestinationPod(), ff.GetDestinationFqdn(), ff.GetDestinationLabel(),
			ff.GetDestinationService(), ff.GetDestinationWorkload(), ff.GetDestinationClusterName(), ff.GetDestinationIdentity(),
			(*flowpb.Flow).GetDestination, func(f *flowpb.Flow) string { return f.GetIP().GetDestination() },
			(*flowpb.Flow).GetDestinationNames, (*flowpb.Flow).GetDestinationService},
	} {
		if len(side.ips) > 0 {
			fn, err := ipMatcher(side.ips, side.ip)
			if err != nil {
				return nil, fmt.Errorf("%s_ip%w", side.name, err)
			}
			add(fn)
		}
		if len(side.pods) > 0 {
			pods, ep := side.pods, side.ep
			add(func(f *flowpb.Flow) bool {
				e := ep(f)
				return slices.ContainsFunc(pods, func(p string) bool { return podMatch(p, e.GetNamespace(), e.GetPodName()) })
			})
		}
		if len(side.fqdns) > 0 {
			fn, err := fqdnMatcher(side.fqdns, side.names)
			if err != nil {
				return nil, fmt.Errorf("%s_fqdn%w", side.name, err)
			}
			add(fn)
		}
		if len(side.labels) > 0 {
			fn, err := labelMatcher(side.labels, side.ep)
			if err != nil {
				return nil, fmt.Errorf("%s_label%w", side.name, err)
			}
			add(fn)
		}
		if len(side.services) > 0 {
			svcs, get := side.services, side.service
			add(func(f *flowpb.Flow) bool {
				s := get(f)
				return s != nil && slices.ContainsFunc(svcs, func(p string) bool { return podMatch(p, s.GetNamespace(), s.GetName()) })
			})
		}
		if len(side.workloads) > 0 {
			ws, ep := side.workloads, side.ep
			add(func(f *flowpb.Flow) bool {
				for _, have := range ep(f).GetWorkloads() {
					for _, w := range ws {
						if (w.GetName() == "" || w.GetName() == have.GetName()) && (w.GetKind() == "" || w.GetKind() == have.GetKind()) {
							return true
						}
					}
				}
				return false
			})
		}
		if len(side.clusters) > 0 {
			cs, ep := side.clusters, side.ep
			add(func(f *flowpb.Flow) bool { return slices.Contains(cs, ep(f).GetClusterName()) })
		}
		if len(side.identities) > 0 {
			ids, ep := side.identities, side.ep
			add(func(f *flowpb.Flow) bool { return slices.Contains(ids, ep(f).GetIdentity()) })
		}
	}
	if v := ff.GetTrafficDirection(); len(v) > 0 {
		add(func(f *flowpb.Flow) bool { return slices.Contains(v, f.GetTrafficDirection()) })
	}
	if v := ff.GetVerdict(); len(v) > 0 {
		add(func(f *flowpb.Flow) bool { return slices.Contains(v, f.GetVerdict()) })
	}
	if v := ff.GetDropReasonDesc(); len(v) > 0 {
		add(func(f *flowpb.Flow) bool { return slices.Contains(v, f.GetDropReasonDesc()) })
	}
	if v := ff.GetEventType(); len(v) > 0 {
		add(func(f *flowpb.Flow) bool {
			et := f.GetEventType()
			return et != nil && slices.ContainsFunc(v, func(t *flowpb.EventTypeFilter) bool {
				return t.GetType() == et.GetType() && (!t.GetMatchSubType() || t.GetSubType() == et.GetSubType())
			})
		})
	}
	if v := ff.GetProtocol(); len(v) > 0 {
		protos := make([]string, len(v))
		for i, p := range v {
			protos[i] = strings.ToLower(p)
			switch protos[i] {
			case "tcp", "udp", "sctp", "icmp", "icmpv4", "icmpv6", "http", "dns", "kafka":
			default:
				return nil, fmt.Errorf("protocol[%d]: %q is not one of tcp, udp, sctp, icmp, icmpv4, icmpv6, http, dns, kafka", i, p)
			}
		}
		add(func(f *flowpb.Flow) bool {
			return slices.ContainsFunc(protos, func(p string) bool { return protoMatch(p, f) })
		})
	}
	for _, pf := range []struct {
		name  string
		ports []string
		get   func(*flowpb.Flow) (uint32, bool)
	}{{"source_port", ff.GetSourcePort(), func(f *flowpb.Flow) (uint32, bool) { s, _, ok := ports(f); return s, ok }},
		{"destination_port", ff.GetDestinationPort(), func(f *flowpb.Flow) (uint32, bool) { _, d, ok := ports(f); return d, ok }}} {
		if len(pf.ports) == 0 {
			continue
		}
		want := make([]uint32, len(pf.ports))
		for i, p := range pf.ports {
			n, err := strconv.ParseUint(p, 10, 16)
			if err != nil {
				return nil, fmt.Errorf("%s[%d]: %q is not a port number", pf.name, i, p)
			}
			want[i] = uint32(n)
		}
		get := pf.get
		add(func(f *flowpb.Flow) bool { p, ok := get(f); return ok && slices.Contains(want, p) })
	}
	if v := ff.GetReply(); len(v) > 0 {
		add(func(f *flowpb.Flow) bool { return slices.Contains(v, f.GetIsReply().GetValue()) })
	}
	if v := ff.GetDnsQuery(); len(v) > 0 {
		res, err := regexps(v)
		if err != nil {
			return nil, fmt.Errorf("dns_query%w", err)
		}
		add(func(f *flowpb.Flow) bool {
			q := f.GetL7().GetDns().GetQuery()
			return f.GetL7().GetDns() != nil && slices.ContainsFunc(res, func(r *regexp.Regexp) bool { return r.MatchString(q) })
		})
	}
	if v := ff.GetHttpStatusCode(); len(v) > 0 {
		for i, c := range v {
			if !validStatus(c) {
				return nil, fmt.Errorf("http_status_code[%d]: %q is neither a status code (404) nor a class (4+)", i, c)
			}
		}
		add(func(f *flowpb.Flow) bool {
			h := f.GetL7().GetHttp()
			return h != nil && slices.ContainsFunc(v, func(c string) bool { return statusMatch(c, h.GetCode()) })
		})
	}
	if v := ff.GetHttpMethod(); len(v) > 0 {
		add(func(f *flowpb.Flow) bool {
			h := f.GetL7().GetHttp()
			return h != nil && slices.ContainsFunc(v, func(m string) bool { return strings.EqualFold(m, h.GetMethod()) })
		})
	}
	for _, hf := range []struct {
		name string
		res  []string
		get  func(*flowpb.HTTP) string
	}{{"http_path", ff.GetHttpPath(), httpPath}, {"http_url", ff.GetHttpUrl(), (*flowpb.HTTP).GetUrl}} {
		if len(hf.res) == 0 {
			continue
		}
		res, err := regexps(hf.res)
		if err != nil {
			return nil, fmt.Errorf("%s%w", hf.name, err)
		}
		get := hf.get
		add(func(f *flowpb.Flow) bool {
			h := f.GetL7().GetHttp()
			return h != nil && slices.ContainsFunc(res, func(r *regexp.Regexp) bool { return r.MatchString(get(h)) })
		})
	}
	if v := ff.GetHttpHeader(); len(v) > 0 {
		add(func(f *flowpb.Flow) bool {
			h := f.GetL7().GetHttp()
			return h != nil && slices.ContainsFunc(v, func(want *flowpb.HTTPHeader) bool {
				return slices.ContainsFunc(h.GetHeaders(), func(got *flowpb.HTTPHeader) bool {
					return strings.EqualFold(got.GetKey(), want.GetKey()) && got.GetValue() == want.GetValue()
				})
			})
		})
	}
	if v := ff.GetTcpFlags(); len(v) > 0 {
		add(func(f *flowpb.Flow) bool {
			have := f.GetL4().GetTCP().GetFlags()
			return have != nil && slices.ContainsFunc(v, func(want *flowpb.TCPFlags) bool { return flagsContain(have, want) })
		})
	}
	if v := ff.GetNodeName(); len(v) > 0 {
		for i, p := range v {
			if _, err := path.Match(p, ""); err != nil {
				return nil, fmt.Errorf("node_name[%d]: %q: %w", i, p, err)
			}
		}
		add(func(f *flowpb.Flow) bool {
			return slices.ContainsFunc(v, func(p string) bool { return nodeMatch(p, f.GetNodeName()) })
		})
	}
	if v := ff.GetIpVersion(); len(v) > 0 {
		add(func(f *flowpb.Flow) bool { return f.GetIP() != nil && slices.Contains(v, f.GetIP().GetIpVersion()) })
	}
	return m, nil
}

func httpPath(h *flowpb.HTTP) string {
	u := h.GetUrl()
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
		if j := strings.IndexByte(u, '/'); j >= 0 {
			u = u[j:]
		} else {
			u = "/"
		}
	}
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	return u
}

func ipMatcher(values []string, get func(*flowpb.Flow) string) (func(*flowpb.Flow) bool, error) {
	var addrs []netip.Addr
	var prefixes []netip.Prefix
	for i, v := range values {
		if strings.Contains(v, "/") {
			p, err := netip.ParsePrefix(v)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %q is neither an address nor a CIDR prefix", i, v)
			}
			prefixes = append(prefixes, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %q is neither an address nor a CIDR prefix", i, v)
		}
		addrs = append(addrs, a)
	}
	return func(f *flowpb.Flow) bool {
		a, err := netip.ParseAddr(get(f))
		if err != nil {
			return false
		}
		return slices.Contains(addrs, a) || slices.ContainsFunc(prefixes, func(p netip.Prefix) bool { return p.Contains(a) })
	}, nil
}

// podMatch matches Hubble's "[namespace/]name-prefix" pod filters.
func podMatch(filter, ns, name string) bool {
	if fns, prefix, ok := strings.Cut(filter, "/"); ok {
		return fns == ns && strings.HasPrefix(name, prefix) && (prefix == "" || name != "")
	}
	return name != "" && strings.HasPrefix(name, filter)
}

func fqdnMatcher(values []string, get func(*flowpb.Flow) []string) (func(*flowpb.Flow) bool, error) {
	res := make([]*regexp.Regexp, len(values))
	for i, v := range values {
		// Hubble's FQDN filters are names with * wildcards.
		pat := "^" + strings.ReplaceAll(regexp.QuoteMeta(strings.TrimSuffix(v, ".")), `\*`, `[-a-zA-Z0-9_.]*`) + `\.?$`
		r, err := regexp.Compile(pat)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %q: %w", i, v, err)
		}
		res[i] = r
	}
	return func(f *flowpb.Flow) bool {
		return slices.ContainsFunc(get(f), func(n string) bool {
			return slices.ContainsFunc(res, func(r *regexp.Regexp) bool { return r.MatchString(n) })
		})
	}, nil
}

// labelSource matches the source prefix of a Cilium label key
// ("k8s:app", "reserved:host").
var labelSource = regexp.MustCompile(`(^|[\s,(!])([a-z0-9-]+):`)

// selectorKey maps a label's source and key onto a key the Kubernetes
// selector parser accepts: k8s: and any: labels are plain keys, other
// sources (reserved:host) become reserved.source.vigil.dev/host.
func selectorKey(src, key string) string {
	if src == "" || src == "k8s" || src == "any" {
		return key
	}
	return src + ".source.vigil.dev/" + key
}

func labelMatcher(values []string, ep func(*flowpb.Flow) *flowpb.Endpoint) (func(*flowpb.Flow) bool, error) {
	sels := make([]labels.Selector, len(values))
	for i, v := range values {
		s := labelSource.ReplaceAllStringFunc(v, func(m string) string {
			sub := labelSource.FindStringSubmatch(m)
			return sub[1] + selectorKey(sub[2], "")
		})
		sel, err := labels.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %q is not a label selector: %w", i, v, err)
		}
		sels[i] = sel
	}
	return func(f *flowpb.Flow) bool {
		set := labelSet(ep(f).GetLabels())
		return slices.ContainsFunc(sels, func(s labels.Selector) bool { return s.Matches(set) })
	}, nil
}

// labelSet turns Cilium labels ("k8s:app=web", "reserved:host") into a set
// the selectors of labelMatcher read.
func labelSet(ls []string) labels.Set {
	set := make(labels.Set, len(ls))
	for _, l := range ls {
		kv, val, _ := strings.Cut(l, "=")
		src, key, ok := strings.Cut(kv, ":")
		if !ok {
			src, key = "", kv
		}
		set[selectorKey(src, key)] = val
	}
	return set
}

func protoMatch(p string, f *flowpb.Flow) bool {
	l4, l7 := f.GetL4(), f.GetL7()
	switch p {
	case "tcp":
		return l4.GetTCP() != nil
	case "udp":
		return l4.GetUDP() != nil
	case "sctp":
		return l4.GetSCTP() != nil
	case "icmp":
		return l4.GetICMPv4() != nil || l4.GetICMPv6() != nil
	case "icmpv4":
		return l4.GetICMPv4() != nil
	case "icmpv6":
		return l4.GetICMPv6() != nil
	case "http":
		return l7.GetHttp() != nil
	case "dns":
		return l7.GetDns() != nil
	case "kafka":
		return l7.GetKafka() != nil
	}
	return false
}

func ports(f *flowpb.Flow) (src, dst uint32, ok bool) {
	l4 := f.GetL4()
	switch {
	case l4.GetTCP() != nil:
		return l4.GetTCP().GetSourcePort(), l4.GetTCP().GetDestinationPort(), true
	case l4.GetUDP() != nil:
		return l4.GetUDP().GetSourcePort(), l4.GetUDP().GetDestinationPort(), true
	case l4.GetSCTP() != nil:
		return l4.GetSCTP().GetSourcePort(), l4.GetSCTP().GetDestinationPort(), true
	}
	return 0, 0, false
}

func regexps(values []string) ([]*regexp.Regexp, error) {
	out := make([]*regexp.Regexp, len(values))
	for i, v := range values {
		r, err := regexp.Compile(v)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %q is not a regular expression: %w", i, v, err)
		}
		out[i] = r
	}
	return out, nil
}

func validStatus(c string) bool {
	if d, ok := strings.CutSuffix(c, "+"); ok {
		return len(d) >= 1 && len(d) <= 2 && strings.Trim(d, "0123456789") == ""
	}
	n, err := strconv.Atoi(c)
	return err == nil && n >= 100 && n <= 599
}

func statusMatch(c string, code uint32) bool {
	if d, ok := strings.CutSuffix(c, "+"); ok {
		return strings.HasPrefix(strconv.Itoa(int(code)), d)
	}
	return c == strconv.Itoa(int(code))
}

func flagsContain(have, want *flowpb.TCPFlags) bool {
	return (!want.FIN || have.FIN) && (!want.SYN || have.SYN) && (!want.RST || have.RST) && (!want.PSH || have.PSH) &&
		(!want.ACK || have.ACK) && (!want.URG || have.URG) && (!want.ECE || have.ECE) && (!want.CWR || have.CWR) &&
		(!want.NS || have.NS)
}

// nodeMatch matches Hubble's node name patterns: "node*" against the node
// name, "cluster/node*" against "cluster/node" (the cluster of a node that
// names none is "default").
func nodeMatch(pattern, node string) bool {
	full := node
	if !strings.Contains(node, "/") {
		full = "default/" + node
	}
	if strings.Contains(pattern, "/") {
		ok, _ := path.Match(pattern, full)
		return ok
	}
	_, name, _ := strings.Cut(full, "/")
	ok, _ := path.Match(pattern, name)
	return ok
}

// LabelMatcher compiles a label selector in Hubble's syntax ("org=empire",
// "k8s:app in (web, api)", "!reserved:world") into a function over Cilium
// labels ("k8s:org=empire").
func LabelMatcher(selector string) (func(labels []string) bool, error) {
	fn, err := labelMatcher([]string{selector}, func(f *flowpb.Flow) *flowpb.Endpoint { return f.GetSource() })
	if err != nil {
		return nil, fmt.Errorf("%q is not a label selector%s", selector, strings.TrimPrefix(err.Error(), "[0]: \""+selector+"\" is not a label selector"))
	}
	return func(ls []string) bool { return fn(&flowpb.Flow{Source: &flowpb.Endpoint{Labels: ls}}) }, nil
}
