package networkpolicy

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// FlowReport is the machine-readable form of a Result (vigil netpol
// --output json).
type FlowReport struct {
	From     string      `json:"from"`
	To       string      `json:"to"`
	ToNames  []string    `json:"to_names,omitempty"`
	Query    string      `json:"query,omitempty"`
	Port     uint16      `json:"port"`
	Protocol string      `json:"protocol"`
	Verdict  string      `json:"verdict"`
	Egress   *SideReport `json:"egress,omitempty"`
	Ingress  *SideReport `json:"ingress,omitempty"`
}

// SideReport is one direction of a FlowReport.
type SideReport struct {
	Verdict string       `json:"verdict"`
	Reason  string       `json:"reason"`
	Rules   []RuleReport `json:"rules,omitempty"`
}

// RuleReport names a deciding rule.
type RuleReport struct {
	ID          uint32 `json:"id"`
	Kind        string `json:"kind"`
	Namespace   string `json:"namespace,omitempty"`
	Name        string `json:"name"`
	Path        string `json:"path,omitempty"`
	DefaultDeny bool   `json:"default_deny,omitempty"`
	Audit       bool   `json:"audit,omitempty"`
	File        string `json:"file"`
	Line        int    `json:"line"`
}

// Report converts a result for JSON output.
func (r Result) Report() FlowReport {
	out := FlowReport{From: r.From.String(), To: r.To.String(), ToNames: r.To.Names, Query: r.Query, Port: r.Port, Protocol: r.Protocol.String(), Verdict: r.Verdict.String()}
	out.Egress, out.Ingress = r.Egress.report(), r.Ingress.report()
	return out
}

// report converts one side for JSON output (nil for nil).
func (s *Side) report() *SideReport {
	if s == nil {
		return nil
	}
	sr := &SideReport{Verdict: s.Verdict.String(), Reason: s.Reason.String()}
	for _, ref := range s.Refs {
		if ref.Policy == nil {
			continue
		}
		sr.Rules = append(sr.Rules, RuleReport{ID: ref.ID, Kind: string(ref.Policy.Kind), Namespace: ref.Policy.Namespace,
			Name: ref.Policy.Name, Path: ref.Path, DefaultDeny: ref.DefaultDeny, Audit: ref.Policy.Audit,
			File: ref.Policy.File, Line: ref.Line})
	}
	return sr
}

// Explain writes the result for people: the verdict line, then each
// direction with the rules that decided it.
func (r Result) Explain() string {
	var b strings.Builder
	to := r.To.String()
	if len(r.To.Names) > 0 {
		to += " (" + strings.Join(r.To.Names, ", ") + ")"
	}
	query := ""
	if r.Query != "" {
		query = " query " + r.Query
	}
	fmt.Fprintf(&b, "%s %s -> %s %d/%s%s\n", r.Verdict, r.From, to, r.Port, r.Protocol, query)
	for _, s := range []struct {
		dir  string
		at   Endpoint
		side *Side
	}{{"egress ", r.From, r.Egress}, {"ingress", r.To, r.Ingress}} {
		if s.side == nil {
			fmt.Fprintf(&b, "  %s %s: not a pod, no policy applies\n", s.dir, s.at)
			continue
		}
		fmt.Fprintf(&b, "  %s %s: %s (%s)\n", s.dir, s.at, s.side.Verdict, s.side.Reason)
		for _, ref := range s.side.Refs {
			fmt.Fprintf(&b, "    %s\n", ref)
		}
	}
	return b.String()
}

// ParseEndpoint resolves "namespace/pod", "pod" (namespace default) or an
// IP address.
func (e *Engine) ParseEndpoint(s string) (Endpoint, error) {
	if ip, err := netip.ParseAddr(s); err == nil {
		return e.Address(ip), nil
	}
	return e.Pod(s)
}

// ParsePort parses "80/TCP", "53/udp" or "80" (TCP).
func ParsePort(s string) (uint16, Protocol, error) {
	num, proto, hasProto := strings.Cut(s, "/")
	p := ProtoTCP
	if hasProto {
		var err error
		if p, err = ParseProtocol(proto); err != nil {
			return 0, 0, err
		}
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 || n > 65535 {
		return 0, 0, fmt.Errorf("invalid port %q (want PORT/PROTOCOL such as 80/TCP, port 1-65535)", s)
	}
	return uint16(n), p, nil
}
