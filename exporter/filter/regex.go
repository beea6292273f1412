package filter

import (
	"regexp"
	"unsafe"
)

// regexCacheSize is the number of remembered results per pattern.
const regexCacheSize = 64

// matcher is a compiled RE2 pattern with a small cache of results for the
// strings it saw last. Go strings are immutable, and the cache holds the
// string it keyed on, so equal data pointer and length mean equal content.
type matcher struct {
	re    *regexp.Regexp
	cache [regexCacheSize]struct {
		s  string
		ok bool
	}
}

func newMatcher(pattern string) (*matcher, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, err
	}
	return &matcher{re: re}, nil
}

func (m *matcher) match(s string) bool {
	if len(s) == 0 {
		return m.re.MatchString(s)
	}
	p := unsafe.StringData(s)
	e := &m.cache[(uint64(uintptr(unsafe.Pointer(p)))*0x9E3779B97F4A7C15)>>58]
	if len(e.s) == len(s) && unsafe.StringData(e.s) == p {
		return e.ok
	}
	ok := m.re.MatchString(s)
	e.s, e.ok = s, ok
	return ok
}

// matchAny reports whether any matcher matches s.
func matchAny(ms []*matcher, s string) bool {
	for _, m := range ms {
		if m.match(s) {
			return true
		}
	}
	return false
}
