package networkpolicy

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
)

// HTTPRule is one entry of a toPorts rules.http list (Cilium's
// PortRuleHTTP): a request matches when every field given matches; an
// entry with no field matches every request. Method, Path and Host are
// extended POSIX regular expressions matched against the whole method, the
// whole request target as sent (path and query, as Envoy's :path) and the
// whole Host header; each header is required present, or present with
// exactly the value given.
type HTTPRule struct {
	Method, Path, Host string
	Headers            []HeaderMatch

	method, path, host *regexp.Regexp
}

// HeaderMatch is one headers entry: "Name" requires the header, "Name:
// value" requires it with that exact value.
type HeaderMatch struct {
	Name     string
	Value    string
	HasValue bool
}

// Request is what an HTTP rule is matched against.
type Request struct {
	Method string
	// Target is the request target as sent: /path?query.
	Target string
	Host   string
	Header http.Header
}

// Matches reports whether the request matches the rule.
func (r *HTTPRule) Matches(req *Request) bool {
	if r.method != nil && !r.method.MatchString(req.Method) {
		return false
	}
	if r.path != nil && !r.path.MatchString(req.Target) {
		return false
	}
	if r.host != nil && !r.host.MatchString(req.Host) {
		return false
	}
	for _, h := range r.Headers {
		vals := req.Header.Values(h.Name)
		if len(vals) == 0 || (h.HasValue && !slices.Contains(vals, h.Value)) {
			return false
		}
	}
	return true
}

// Equal reports whether two rules are written the same.
func (r HTTPRule) Equal(o HTTPRule) bool {
	return r.Method == o.Method && r.Path == o.Path && r.Host == o.Host && slices.Equal(r.Headers, o.Headers)
}

// String is the rule as Cilium's fields: method=POST path=/v1/.
func (r HTTPRule) String() string {
	var parts []string
	for _, f := range [][2]string{{"method", r.Method}, {"path", r.Path}, {"host", r.Host}} {
		if f[1] != "" {
			parts = append(parts, f[0]+"="+f[1])
		}
	}
	for _, h := range r.Headers {
		if h.HasValue {
			parts = append(parts, fmt.Sprintf("header %s: %s", h.Name, h.Value))
		} else {
			parts = append(parts, "header "+h.Name)
		}
	}
	if len(parts) == 0 {
		return "any request"
	}
	return strings.Join(parts, " ")
}

// compileHTTPRegexp anchors an extended POSIX expression so that it must
// match the whole value.
func compileHTTPRegexp(expr string) (*regexp.Regexp, error) {
	if expr == "" {
		return nil, nil
	}
	re, err := regexp.CompilePOSIX("^(" + expr + ")$")
	if err != nil {
		// The error names the anchored form; name the user's.
		if _, err2 := regexp.CompilePOSIX(expr); err2 != nil {
			err = err2
		}
		return nil, fmt.Errorf("invalid regular expression %q: %w", expr, err)
	}
	return re, nil
}

// tokenChar reports whether c may appear in an HTTP token (RFC 9110 tchar).
func tokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// checkMethod refuses a method expression that no method can match: one
// with characters that are neither token characters nor regular
// expression syntax (spaces, slashes, colons...).
func checkMethod(expr string) error {
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		if tokenChar(c) || strings.IndexByte(`()[]{}?\,`, c) >= 0 {
			continue
		}
		return fmt.Errorf("method %q: %q is not a character of an HTTP method (a token)", expr, c)
	}
	return nil
}

// parseHTTPRule validates one rules.http entry; problems are added under
// path.
func parseHTTPRule(p *problems, path string, c *CiliumHTTPRule) (HTTPRule, bool) {
	r := HTTPRule{Method: c.Method, Path: c.Path, Host: c.Host}
	ok := true
	unsupported(p, path+".headerMatches", c.HeaderMatches, "headerMatches (use headers)")
	if c.HeaderMatches.Present() {
		ok = false
	}
	if err := checkMethod(c.Method); err != nil {
		p.add(path+".method", "%v", err)
		ok = false
	} else if re, err := compileHTTPRegexp(c.Method); err != nil {
		p.add(path+".method", "%v", err)
		ok = false
	} else {
		r.method = re
	}
	if re, err := compileHTTPRegexp(c.Path); err != nil {
		p.add(path+".path", "%v", err)
		ok = false
	} else {
		r.path = re
	}
	if re, err := compileHTTPRegexp(c.Host); err != nil {
		p.add(path+".host", "%v", err)
		ok = false
	} else {
		r.host = re
	}
	for i, h := range c.Headers {
		hpath := fmt.Sprintf("%s.headers[%d]", path, i)
		name, value, hasValue := strings.Cut(h, ":")
		name = strings.TrimSpace(name)
		if name == "" {
			p.add(hpath, "header rule %q has no header name (want \"Name\" or \"Name: value\")", h)
			ok = false
			continue
		}
		if bad := strings.IndexFunc(name, func(c rune) bool { return c > 0x7f || !tokenChar(byte(c)) }); bad >= 0 {
			p.add(hpath, "header name %q: %q is not allowed in a header name (a token)", name, name[bad])
			ok = false
			continue
		}
		r.Headers = append(r.Headers, HeaderMatch{Name: http.CanonicalHeaderKey(name), Value: strings.TrimSpace(value), HasValue: hasValue})
	}
	return r, ok
}

// HTTPRules is the L7 policy of a flow: nil when no rules.http governs it
// (every request passes), otherwise the requests that may pass, with the
// rules they come from.
type HTTPRules struct {
	// Rules allow a request when any of them matches.
	Rules []HTTPRule
	// Refs are the policy rules whose toPorts entries carry the lists.
	Refs []RuleRef
}

// Allows reports whether a request passes, and the policy rule that
// allowed it (nil rules: every request, no rule).
func (h *HTTPRules) Allows(req *Request) bool {
	if h == nil {
		return true
	}
	for i := range h.Rules {
		if h.Rules[i].Matches(req) {
			return true
		}
	}
	return false
}

// HTTPFor returns the rules.http restrictions on a TCP flow that one side
// of a Check allowed: nil when the side was not decided by allow rules or
// when one of its deciding rules opens the port without rules.http (in
// Cilium, an L4-only rule for the same peer and port lets every request
// through).
func HTTPFor(side *Side, port uint16) *HTTPRules {
	if side == nil || side.Verdict != Allow || side.Reason != ReasonAllowedByRule {
		return nil
	}
	var out HTTPRules
	for _, ref := range side.Refs {
		rule := ref.Policy.rule(ref.Path)
		if rule == nil {
			return nil
		}
		governed := false
		if len(rule.Ports) == 0 {
			return nil
		}
		for _, ps := range rule.Ports {
			if ps.Protocol != ProtoAny && ps.Protocol != ProtoTCP {
				continue
			}
			if ps.Name != "" || port < ps.First || port > ps.Last {
				// A named port cannot carry rules.http, so a
				// matching named port is L4 only.
				if ps.Name != "" {
					return nil
				}
				continue
			}
			if ps.HTTP == nil {
				return nil
			}
			governed = true
			out.Rules = append(out.Rules, ps.HTTP...)
		}
		if !governed {
			return nil
		}
		out.Refs = append(out.Refs, ref)
	}
	if len(out.Refs) == 0 {
		return nil
	}
	return &out
}

// HTTPPorts returns the TCP ports some rules.http governs, sorted.
func HTTPPorts(pols []*Policy) []uint16 {
	seen := map[uint16]bool{}
	for _, pol := range pols {
		for _, sec := range pol.Sections {
			for _, r := range sec.Rules {
				for _, ps := range r.Ports {
					if ps.HTTP == nil {
						continue
					}
					for port := int(ps.First); port <= int(ps.Last); port++ {
						seen[uint16(port)] = true
					}
				}
			}
		}
	}
	var out []uint16
	for p := range seen {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// rule finds a rule of the policy by its field path.
func (p *Policy) rule(path string) *Rule {
	if p == nil {
		return nil
	}
	for _, sec := range p.Sections {
		for _, r := range sec.Rules {
			if r.Path == path {
				return r
			}
		}
	}
	return nil
}

// HTTPRedirect is a pair of identities and a TCP port whose connections
// rules.http governs: the datapath sends them through the HTTP proxy.
// Local is the connecting pod's local identity, Remote the identity of the
// address it connects to.
type HTTPRedirect struct {
	Local, Remote uint32
	Port          uint16
}

// HTTPRedirects lists, for every pod of the engine as a client, the
// destinations and ports where rules.http of either side restricts the
// requests of a connection policy allows: pods, and the CIDR and world
// identities egress rules name. Sorted.
func (e *Engine) HTTPRedirects() []HTTPRedirect {
	ports := HTTPPorts(e.policies)
	if len(ports) == 0 {
		return nil
	}
	var dests []Endpoint
	for _, ep := range e.Pods() {
		for _, ip := range ep.Pod.IPs {
			dests = append(dests, e.Address(ip))
		}
	}
	for _, id := range e.Identities() {
		if id.Kind == KindCIDR || id.ID == IdentityWorldIPv4 || id.ID == IdentityWorldIPv6 {
			dests = append(dests, Endpoint{Identity: id.ID})
		}
	}
	seen := map[HTTPRedirect]bool{}
	for _, from := range e.Pods() {
		if from.Local == 0 {
			continue
		}
		for _, to := range dests {
			for _, port := range ports {
				k := HTTPRedirect{Local: from.Local, Remote: to.Identity, Port: port}
				if seen[k] {
					continue
				}
				r := e.Check(from, to, ProtoTCP, port)
				if r.Verdict == Allow && (HTTPFor(r.Egress, port) != nil || HTTPFor(r.Ingress, port) != nil) {
					seen[k] = true
				}
			}
		}
	}
	out := make([]HTTPRedirect, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b HTTPRedirect) int {
		if a.Local != b.Local {
			return int(a.Local) - int(b.Local)
		}
		if a.Remote != b.Remote {
			return int(a.Remote) - int(b.Remote)
		}
		return int(a.Port) - int(b.Port)
	})
	return out
}
