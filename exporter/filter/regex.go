package filter

import (
	"hash/maphash"
	"regexp"
	"unsafe"
)

// regexCacheSize is the number of remembered results per pattern.
const regexCacheSize = 256

var seed = maphash.MakeSeed()

// slotOf returns the cache slot of s: by content, since the same binary
// paths and command lines come back in many processes.
func slotOf(s string, size int) int {
	return int(maphash.String(seed, s) & uint64(size-1))
}

// matcher is a compiled RE2 pattern with a cache of results for strings it
// saw: checked first by identity (the same process object again), then by
// content.
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
	e := &m.cache[slotOf(s, regexCacheSize)]
	if len(e.s) == len(s) && (unsafe.StringData(e.s) == unsafe.StringData(s) || e.s == s) {
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
