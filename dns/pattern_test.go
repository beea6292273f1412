package dns

import (
	"errors"
	"strings"
	"testing"
)

func TestParsePatterns(t *testing.T) {
	long := strings.Repeat("a", 64)
	name253 := strings.Repeat(strings.Repeat("a", 62)+".", 5)[:253]
	tests := []struct {
		in      string
		pattern bool
		want    Pattern
		err     string
	}{
		{in: "API.Example.com.", want: Pattern{KindName, "api.example.com"}},
		{in: "_sip._tcp.example.com", want: Pattern{KindName, "_sip._tcp.example.com"}},
		{in: "*", pattern: true, want: Pattern{KindWildcard, "*"}},
		{in: "*.", pattern: true, want: Pattern{KindWildcard, "*"}},
		{in: "*.Example.com", pattern: true, want: Pattern{KindWildcard, "*.example.com"}},
		{in: "api-*.example.com", pattern: true, want: Pattern{KindWildcard, "api-*.example.com"}},
		{in: "example.com", pattern: true, want: Pattern{KindName, "example.com"}},
		{in: name253, want: Pattern{KindName, name253}},
		{in: "", err: "the name is empty"},
		{in: ".", err: "the root name"},
		{in: "a..b", err: "label 2 is empty"},
		{in: ".a", err: "label 1 is empty"},
		{in: long + ".com", err: "is 64 bytes long (at most 63)"},
		{in: name253 + "a", err: "the name is 254 bytes long (at most 253)"},
		{in: "*.example.com", err: `holds '*'`},
		{in: "exa mple.com", err: `holds ' '`},
		{in: "ex[a].com", pattern: true, err: `holds '['`},
		{in: "bücher.de", err: `holds`},
		{in: "a.b/c", pattern: true, err: `holds '/'`},
	}
	for _, tt := range tests {
		parse := ParseName
		if tt.pattern {
			parse = ParsePattern
		}
		got, err := parse(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, ErrInvalid) {
				t.Errorf("parse(%q) = %v, %v; want an ErrInvalid containing %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parse(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func mustPattern(t testing.TB, s string) Pattern {
	t.Helper()
	p, err := ParsePattern(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Cilium's wildcard semantics: '*' stays within a label; '*' alone is
// every name.
func TestPatternMatch(t *testing.T) {
	tests := []struct {
		pattern string
		match   []string
		nomatch []string
	}{
		{"*", []string{"a", "example.com", "A.B.C.D.", "_dmarc.example.com"}, []string{"", "a..b", "exa mple.com"}},
		{"*.example.com", []string{"www.example.com", "API.example.com.", "-.example.com"}, []string{"example.com", "a.b.example.com", "wwwexample.com", "www.example.org"}},
		{"*example.com", []string{"example.com", "myexample.com"}, []string{"www.example.com"}},
		{"api-*.svc.*.local", []string{"api-.svc.x.local", "api-v1.svc.cluster.local"}, []string{"api.svc.cluster.local", "api-v1.svc.a.b.local"}},
		{"a*b*c", []string{"abc", "aXbYc", "abbbc", "acbc"}, []string{"ab", "acb", "a.b.c"}},
		{"example.com", []string{"EXAMPLE.com", "example.com."}, []string{"www.example.com", "example.co"}},
	}
	for _, tt := range tests {
		p := mustPattern(t, tt.pattern)
		a, err := Compile([]Pattern{p})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range tt.match {
			if !p.Match(n) {
				t.Errorf("%s does not match %q; want a match", p, n)
			}
			if a.Run(Normalize(n)) != 1 {
				t.Errorf("automaton of %s does not accept %q; want it to", p, n)
			}
		}
		for _, n := range tt.nomatch {
			if p.Match(n) {
				t.Errorf("%s matches %q; want no match", p, n)
			}
			if a.Run(Normalize(n)) != 0 {
				t.Errorf("automaton of %s accepts %q; want it not to", p, n)
			}
		}
	}
}

func TestAutomatonSets(t *testing.T) {
	pats := []Pattern{mustPattern(t, "*.example.com"), mustPattern(t, "api.example.com"), mustPattern(t, "*")}
	a, err := Compile(pats)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]int{
		"api.example.com": {0, 1, 2},
		"www.example.com": {0, 2},
		"example.org":     {2},
		"a b":             nil,
	} {
		got := a.Run(name)
		if want == nil {
			if got != 0 {
				t.Errorf("Run(%q) = %d; want 0", name, got)
			}
			continue
		}
		if got == 0 || len(a.Sets[got-1]) != len(want) {
			t.Fatalf("Run(%q) = %d (sets %v); want the set %v", name, got, a.Sets, want)
		}
		for i := range want {
			if a.Sets[got-1][i] != want[i] {
				t.Errorf("Run(%q) gives the set %v; want %v", name, a.Sets[got-1], want)
			}
		}
	}
}

func TestAutomatonTooBig(t *testing.T) {
	pats := []Pattern{mustPattern(t, "*.example.com"), mustPattern(t, "api-*.example.org")}
	if _, err := compile(pats, 40); err != nil {
		t.Fatalf("two patterns within 40 states: %v", err)
	}
	_, err := compile(pats, 10)
	if err == nil || !strings.Contains(err.Error(), "the 2 DNS patterns need more than 10 automaton states") {
		t.Errorf("compile with 10 states = %v; want the limit named", err)
	}
}

// FuzzAutomaton checks that the automaton the datapath walks decides every
// name as the Go matcher does.
func FuzzAutomaton(f *testing.F) {
	f.Add("*.example.com", "a*b", "www.example.com")
	f.Add("*", "x.y", "x.y")
	f.Add("a*b*c", "*-*", "a-b-c")
	f.Fuzz(func(t *testing.T, p1, p2, name string) {
		a1, err1 := ParsePattern(p1)
		a2, err2 := ParsePattern(p2)
		if err1 != nil || err2 != nil {
			return
		}
		a, err := Compile([]Pattern{a1, a2})
		if err != nil {
			return
		}
		got := a.Run(Normalize(name))
		var want []int
		for i, p := range []Pattern{a1, a2} {
			if p.Match(name) {
				want = append(want, i)
			}
		}
		if (got == 0) != (len(want) == 0) {
			t.Fatalf("patterns %q %q, name %q: automaton %d, matcher %v", p1, p2, name, got, want)
		}
		if got != 0 && len(a.Sets[got-1]) != len(want) {
			t.Fatalf("patterns %q %q, name %q: automaton set %v, matcher %v", p1, p2, name, a.Sets[got-1], want)
		}
	})
}
