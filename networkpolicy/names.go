package networkpolicy

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/vigilsec/vigil/dns"
)

// NameTable classifies DNS names for toFQDNs rules: every set of patterns
// that some name matches (and no other pattern does) is a KindFQDN
// identity, and a name's identity is that of the set it matches. The
// datapath walks the same automaton over the name of each DNS answer a pod
// receives and records the answer's addresses under that identity for the
// pod; the policy map decides them like any other remote identity.
type NameTable struct {
	// Patterns are every toFQDNs and rules.dns pattern of the policies,
	// ascending by String; the automaton's pattern indices refer to them.
	Patterns []dns.Pattern
	// Automaton is nil when no policy has toFQDNs or rules.dns.
	Automaton *dns.Automaton
	// SetIdentity[i] is the identity of the toFQDNs patterns of
	// Automaton.Sets[i] (0: it holds rules.dns patterns only).
	SetIdentity []uint32
	// Groups are the rules.dns pattern lists (bit i of a group mask is
	// Groups[i]); SetGroups[i] is the mask of the lists with a pattern in
	// Automaton.Sets[i].
	Groups    []string
	SetGroups []uint16
	fqdn      map[int]bool
	groupBit  map[string]uint16
}

// MaxDNSGroups bounds the distinct rules.dns pattern lists of the policies
// (the datapath keeps their mask in 16 bits of a policy entry).
const MaxDNSGroups = 16

func compileNames(fqdns []dns.Pattern, groups []string, dnsPats []dns.Pattern) (*NameTable, error) {
	if len(groups) > MaxDNSGroups {
		return nil, fmt.Errorf("networkpolicy: rules.dns: %d different pattern lists; at most %d are supported", len(groups), MaxDNSGroups)
	}
	pats := sortPatterns(append(slices.Clone(fqdns), dnsPats...))
	t := &NameTable{Patterns: pats, Groups: groups, fqdn: map[int]bool{}, groupBit: map[string]uint16{}}
	for i, g := range groups {
		t.groupBit[g] = 1 << i
	}
	if len(pats) == 0 {
		return t, nil
	}
	for i, p := range pats {
		_, t.fqdn[i] = slices.BinarySearchFunc(fqdns, p, func(a, b dns.Pattern) int { return strings.Compare(a.String(), b.String()) })
	}
	a, err := dns.Compile(pats)
	if err != nil {
		return nil, fmt.Errorf("networkpolicy: toFQDNs and rules.dns: %w", err)
	}
	t.Automaton, t.SetIdentity, t.SetGroups = a, make([]uint32, len(a.Sets)), make([]uint16, len(a.Sets))
	for i, set := range a.Sets {
		for gi, g := range groups {
			for _, pi := range set {
				if strings.Contains(" "+g, " "+pats[pi].String()+" ") {
					t.SetGroups[i] |= 1 << gi
				}
			}
		}
	}
	return t, nil
}

// groupMask returns the bit of a rules.dns pattern list (0: none).
func (t *NameTable) groupMask(pats []dns.Pattern) uint16 {
	if t == nil || len(pats) == 0 {
		return 0
	}
	return t.groupBit[dnsGroupKey(pats)]
}

// NameGroups returns the mask of the rules.dns pattern lists that allow
// looking the name up.
func (t *NameTable) NameGroups(name string) uint16 {
	if t == nil || t.Automaton == nil {
		return 0
	}
	set := t.Automaton.Run(dns.Normalize(name))
	if set == 0 {
		return 0
	}
	return t.SetGroups[set-1]
}

var emptyAutomaton = &dns.Automaton{}

// automaton returns the automaton, empty when there is none.
func (t *NameTable) automaton() *dns.Automaton {
	if t == nil || t.Automaton == nil {
		return emptyAutomaton
	}
	return t.Automaton
}

// Identity returns the identity of a DNS name (any case, with or without
// the trailing dot): the identity of the set of patterns it matches, or
// false when none matches.
func (t *NameTable) Identity(name string) (uint32, bool) {
	if t == nil || t.Automaton == nil {
		return 0, false
	}
	set := t.Automaton.Run(dns.Normalize(name))
	if set == 0 || t.SetIdentity[set-1] == 0 {
		return 0, false
	}
	return t.SetIdentity[set-1], true
}

// Names returns the engine's name table.
func (e *Engine) Names() *NameTable { return e.names }

// DecideNames is Decide for egress to an address that the local pod
// learned from DNS answers for names with the identities nameIDs: when
// the address's own identity is denied only by default deny, an allow of
// one of the names' identities lets the flow through. A deny rule on the
// address wins over the names.
func (e *Engine) DecideNames(local uint32, remote uint32, nameIDs []uint32, proto Protocol, port uint16) Decision {
	d := e.Decide(local, Egress, remote, proto, port)
	if d.Verdict == Allow || d.Reason != ReasonDefaultDeny {
		return d
	}
	for _, id := range nameIDs {
		if dn := e.Decide(local, Egress, id, proto, port); dn.Verdict == Allow && dn.Reason == ReasonAllowedByRule {
			return dn
		}
	}
	return d
}

// Resolved is a name→address table for offline evaluation: what a pod
// would have learned from DNS answers.
type Resolved map[string][]netip.Addr

// NamesOf returns the names that resolve to ip, in ascending order.
func (r Resolved) NamesOf(ip netip.Addr) []string {
	var out []string
	for name, ips := range r {
		for _, a := range ips {
			if a.Unmap() == ip.Unmap() {
				out = append(out, name)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

// NameIdentities returns the identities of names (those no pattern
// matches have none), each once.
func (t *NameTable) NameIdentities(names []string) []uint32 {
	var out []uint32
	for _, n := range names {
		if id, ok := t.Identity(n); ok && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// LookupNames decides as the BPF programs do for egress to an address
// learned under the identities nameIDs (see Engine.DecideNames).
func (t *Tables) LookupNames(local uint32, remote uint32, nameIDs []uint32, proto Protocol, port uint16) PolicyEntry {
	v := t.Lookup(local, Egress, remote, proto, port)
	if v.Verdict == Allow || v.Reason != ReasonDefaultDeny {
		return v
	}
	for _, id := range nameIDs {
		if vn := t.Lookup(local, Egress, id, proto, port); vn.Verdict == Allow && vn.Reason == ReasonAllowedByRule {
			return vn
		}
	}
	return v
}

// ParseHosts reads a name→address table in the form of /etc/hosts: per
// line an address and one or more names; '#' starts a comment. Problems
// are reported as FILE:LINE: what is wrong.
func ParseHosts(file string, data []byte, into Resolved) error {
	var errs []string
	for i, line := range strings.Split(string(data), "\n") {
		if c := strings.IndexByte(line, '#'); c >= 0 {
			line = line[:c]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Sprintf("%s:%d: %s", file, i+1, fmt.Sprintf(format, args...)))
		}
		ip, err := netip.ParseAddr(fields[0])
		if err != nil {
			bad("invalid IP address %q (want: ADDRESS NAME...)", fields[0])
			continue
		}
		if len(fields) == 1 {
			bad("address %s has no name (want: ADDRESS NAME...)", ip)
			continue
		}
		for _, n := range fields[1:] {
			if _, err := dns.ParseName(n); err != nil {
				bad("name %q: %v", n, err)
				continue
			}
			into.add(n, ip)
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}

// ParseResolve reads NAME=ADDRESS[,ADDRESS...] into the table.
func ParseResolve(s string, into Resolved) error {
	name, addrs, ok := strings.Cut(s, "=")
	if !ok || addrs == "" {
		return fmt.Errorf("%q: want NAME=ADDRESS[,ADDRESS...]", s)
	}
	if _, err := dns.ParseName(name); err != nil {
		return fmt.Errorf("%q: name: %w", s, err)
	}
	for _, a := range strings.Split(addrs, ",") {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			return fmt.Errorf("%q: invalid IP address %q", s, a)
		}
		into.add(name, ip)
	}
	return nil
}

func (r Resolved) add(name string, ip netip.Addr) {
	name = dns.Normalize(name)
	if !slices.Contains(r[name], ip.Unmap()) {
		r[name] = append(r[name], ip.Unmap())
	}
}

// Endpoint resolves a destination for offline evaluation: a pod, an
// address (with the names that resolve to it), or a name of the table
// (its first address, with the name).
func (r Resolved) Endpoint(e *Engine, s string) (Endpoint, error) {
	if ip, err := netip.ParseAddr(s); err == nil {
		ep := e.Address(ip)
		if ep.Pod == nil {
			ep.Names = r.NamesOf(ip)
		}
		return ep, nil
	}
	if ips := r[dns.Normalize(s)]; len(ips) > 0 {
		ep := e.Address(ips[0])
		if ep.Pod == nil {
			ep.Names = []string{dns.Normalize(s)}
		}
		return ep, nil
	}
	if _, err := dns.ParseName(s); err == nil && strings.Contains(s, ".") && !strings.Contains(s, "/") {
		if _, perr := e.Pod(s); perr != nil {
			return Endpoint{}, fmt.Errorf("%q is neither a pod nor a name of the DNS table (give its addresses with --resolve %s=ADDRESS or --hosts FILE)", s, s)
		}
	}
	return e.Pod(s)
}

// DecideQuery decides a DNS query of the local pod for name to a server
// of identity remote: what Decide says, unless the rules opening the port
// restrict names with rules.dns and none of their lists matches name; the
// query is then refused (ReasonDNSRefused).
func (e *Engine) DecideQuery(local, remote uint32, proto Protocol, port uint16, name string) Decision {
	d := e.Decide(local, Egress, remote, proto, port)
	if d.Verdict != Allow || d.DNSGroups == 0 || e.names.NameGroups(name)&d.DNSGroups != 0 {
		return d
	}
	return Decision{Verdict: Deny, Reason: ReasonDNSRefused, Rules: d.Rules}
}

// LookupQuery decides a DNS query as the BPF programs do (DecideQuery).
func (t *Tables) LookupQuery(names *NameTable, local, remote uint32, proto Protocol, port uint16, name string) PolicyEntry {
	v := t.Lookup(local, Egress, remote, proto, port)
	if v.Verdict != Allow || v.DNSGroups == 0 || names.NameGroups(name)&v.DNSGroups != 0 {
		return v
	}
	return PolicyEntry{Verdict: Deny, Reason: ReasonDNSRefused, Rule: v.Rule}
}

// CheckQuery decides a DNS query for name from one endpoint to a DNS
// server: Check, with the egress side decided by DecideQuery.
func (e *Engine) CheckQuery(from, to Endpoint, proto Protocol, port uint16, name string) Result {
	res := e.Check(from, to, proto, port)
	if from.Pod != nil {
		res.Egress = e.side(e.DecideQuery(from.Local, to.Identity, proto, port, name))
		res.Verdict = combine(res.Egress, res.Ingress)
	}
	res.Query = name
	return res
}
