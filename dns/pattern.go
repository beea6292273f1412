package dns

import (
	"errors"
	"fmt"
	"strings"
)

// Limits of DNS names (RFC 1035 section 2.3.4), counted without the
// trailing dot.
const (
	MaxNameLen  = 253
	MaxLabelLen = 63
)

// PatternKind tells a matchName from a matchPattern.
type PatternKind uint8

const (
	// KindName matches one name exactly (case-insensitive).
	KindName PatternKind = iota + 1
	// KindWildcard matches names with Cilium's matchPattern semantics: a
	// "*" matches zero or more characters of one label (never a dot), and
	// a pattern of "*" alone matches every name.
	KindWildcard
)

// Pattern is a validated name or name pattern, kept in canonical form:
// lower case, without the trailing dot.
type Pattern struct {
	Kind PatternKind
	// Text is the canonical form ("*" for the match-all pattern).
	Text string
}

// String returns the pattern as a policy writes it: matchName:x or
// matchPattern:x.
func (p Pattern) String() string {
	if p.Kind == KindName {
		return "matchName:" + p.Text
	}
	return "matchPattern:" + p.Text
}

// MatchAll reports whether the pattern matches every name.
func (p Pattern) MatchAll() bool { return p.Kind == KindWildcard && p.Text == "*" }

// ErrInvalid is what every validation error matches with errors.Is.
var ErrInvalid = errors.New("invalid DNS name")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// nameChar reports whether a DNS name of a policy may hold c (letters,
// digits, hyphen and underscore, as in _sip._tcp.example.com).
func nameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// ParseName validates a matchName value.
func ParseName(s string) (Pattern, error) {
	text, err := canonical(s, false)
	if err != nil {
		return Pattern{}, err
	}
	return Pattern{Kind: KindName, Text: text}, nil
}

// ParsePattern validates a matchPattern value.
func ParsePattern(s string) (Pattern, error) {
	if strings.TrimSuffix(s, ".") == "*" {
		return Pattern{Kind: KindWildcard, Text: "*"}, nil
	}
	text, err := canonical(s, true)
	if err != nil {
		return Pattern{}, err
	}
	if !strings.Contains(text, "*") {
		// A pattern without a wildcard is a name.
		return Pattern{Kind: KindName, Text: text}, nil
	}
	return Pattern{Kind: KindWildcard, Text: text}, nil
}

// canonical checks a name (or pattern, when wild) and returns it in lower
// case without its trailing dot.
func canonical(s string, wild bool) (string, error) {
	if s == "" {
		return "", invalid("the name is empty")
	}
	text := strings.ToLower(strings.TrimSuffix(s, "."))
	if text == "" {
		return "", invalid("the root name %q selects nothing", s)
	}
	if len(text) > MaxNameLen {
		return "", invalid("the name is %d bytes long (at most %d)", len(text), MaxNameLen)
	}
	for i, label := range strings.Split(text, ".") {
		if label == "" {
			return "", invalid("label %d is empty (two dots in a row, or a leading dot)", i+1)
		}
		if len(label) > MaxLabelLen {
			return "", invalid("label %q is %d bytes long (at most %d)", label, len(label), MaxLabelLen)
		}
		for j := 0; j < len(label); j++ {
			c := label[j]
			if nameChar(c) || wild && c == '*' {
				continue
			}
			what := "letters, digits, '-' and '_'"
			if wild {
				what += " and '*'"
			}
			return "", invalid("label %q holds %q: DNS names of a policy hold only %s", label, rune(c), what)
		}
	}
	return text, nil
}

// Normalize returns a name from the wire or a user in the form patterns
// match: lower case, without the trailing dot.
func Normalize(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

// Match reports whether a name (in any case, with or without the trailing
// dot) matches the pattern.
func (p Pattern) Match(name string) bool {
	name = Normalize(name)
	if name == "" || len(name) > MaxNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !nameChar(name[i]) && name[i] != '.' {
			return false
		}
	}
	switch p.Kind {
	case KindName:
		return name == p.Text
	case KindWildcard:
		if p.Text == "*" {
			return validLabels(name)
		}
		pl, nl := strings.Split(p.Text, "."), strings.Split(name, ".")
		if len(pl) != len(nl) {
			return false
		}
		for i := range pl {
			if !globLabel(pl[i], nl[i]) {
				return false
			}
		}
		return true
	}
	return false
}

// validLabels reports whether every label of a name is non-empty.
func validLabels(name string) bool {
	for _, l := range strings.Split(name, ".") {
		if l == "" {
			return false
		}
	}
	return true
}

// globLabel matches one label against a label pattern where '*' matches
// any run of characters.
func globLabel(pat, s string) bool {
	// The classic two-pointer glob: remember the last star and retry from
	// one character further on a mismatch.
	pi, si, star, mark := 0, 0, -1, 0
	for si < len(s) {
		switch {
		case pi < len(pat) && pat[pi] == '*':
			star, mark = pi, si
			pi++
		case pi < len(pat) && pat[pi] == s[si]:
			pi++
			si++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(pat) && pat[pi] == '*' {
		pi++
	}
	return pi == len(pat)
}
