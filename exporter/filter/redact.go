package filter

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"unsafe"
)

// Mask replaces the text of every capture group a redaction pattern matches.
const Mask = "*****"

// Redactor hides secrets in process arguments: every text captured by a
// group of one of its RE2 patterns is replaced by Mask, as Tetragon's
// redaction filters do. For example the pattern
//
//	(?:--password)(?:\s+|=)(\S+)
//
// turns "--password=hunter2 -v" into "--password=***** -v".
type Redactor struct {
	rules []redactRule
	cache [256]struct{ in, out string }
}

type redactRule struct {
	re *regexp.Regexp
	// literal is text every match contains; arguments without it are
	// skipped without running the regular expression.
	literal string
	// prefix is text every match starts with, and anchored the pattern
	// anchored at the start: matches are then found by looking for prefix
	// and trying anchored there, which is several times faster than an
	// unanchored search with submatches.
	prefix   string
	anchored *regexp.Regexp
}

// NewRedactor compiles patterns; source names them in errors, for example
// "--export-redact". Each pattern needs at least one capture group.
func NewRedactor(source string, patterns []string) (*Redactor, error) {
	r := &Redactor{}
	for i, p := range patterns {
		field := fmt.Sprintf("%s[%d]", source, i)
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, &Error{Source: field, Err: err}
		}
		if re.NumSubexp() == 0 {
			return nil, &Error{Source: field, Err: fmt.Errorf("pattern %q has no capture group; put what to hide in (...)", p)}
		}
		rule := redactRule{re: re, literal: requiredLiteral(p)}
		if prefix, _ := re.LiteralPrefix(); prefix != "" {
			rule.prefix = prefix
			rule.anchored = regexp.MustCompile(`^(?:` + p + `)`)
		}
		r.rules = append(r.rules, rule)
	}
	return r, nil
}

// Len returns the number of patterns.
func (r *Redactor) Len() int {
	if r == nil {
		return 0
	}
	return len(r.rules)
}

// Redact returns args with every captured secret replaced by Mask, or args
// itself when nothing matched.
func (r *Redactor) Redact(args string) string {
	if r == nil || len(args) == 0 {
		return args
	}
	e := &r.cache[slotOf(args, len(r.cache))]
	if len(e.in) == len(args) && (unsafe.StringData(e.in) == unsafe.StringData(args) || e.in == args) {
		return e.out
	}
	out := args
	for i := range r.rules {
		out = r.rules[i].apply(out)
	}
	e.in, e.out = args, out
	return out
}

func (rule *redactRule) apply(s string) string {
	if rule.literal != "" && !strings.Contains(s, rule.literal) {
		return s
	}
	var matches [][]int
	if rule.anchored != nil {
		matches = rule.findAnchored(s)
	} else {
		matches = rule.re.FindAllStringSubmatchIndex(s, -1)
	}
	if matches == nil {
		return s
	}
	var b strings.Builder
	last := 0
	for _, m := range matches {
		// m holds start/end pairs: the whole match, then each group.
		for g := 2; g+1 < len(m); g += 2 {
			start, end := m[g], m[g+1]
			if start < 0 || start < last || start == end {
				continue // group did not take part, nested in one already masked, or empty
			}
			b.WriteString(s[last:start])
			b.WriteString(Mask)
			last = end
		}
	}
	if last == 0 && b.Len() == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// findAnchored finds what FindAllStringSubmatchIndex finds, for a pattern
// whose matches all start with prefix: the leftmost match starts at the
// first occurrence of prefix where the anchored pattern matches.
func (rule *redactRule) findAnchored(s string) [][]int {
	var out [][]int
	for pos := 0; pos < len(s); {
		i := strings.Index(s[pos:], rule.prefix)
		if i < 0 {
			break
		}
		start := pos + i
		m := rule.anchored.FindStringSubmatchIndex(s[start:])
		if m == nil {
			pos = start + 1
			continue
		}
		for j := range m {
			if m[j] >= 0 {
				m[j] += start
			}
		}
		out = append(out, m)
		pos = m[1] // non-empty: the match holds the prefix
	}
	return out
}

// requiredLiteral returns a case-sensitive substring every match of pattern
// must contain, or "" when there is none that is simple to find.
func requiredLiteral(pattern string) string {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return ""
	}
	return literalOf(re.Simplify())
}

func literalOf(re *syntax.Regexp) string {
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return ""
		}
		return string(re.Rune)
	case syntax.OpCapture, syntax.OpPlus:
		return literalOf(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return literalOf(re.Sub[0])
		}
	case syntax.OpConcat:
		best := ""
		for _, sub := range re.Sub {
			if l := literalOf(sub); len(l) > len(best) {
				best = l
			}
		}
		return best
	}
	return ""
}
