package process

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/vigilsec/vigil/event"
)

// DefaultExecEnv are the environment variables reported at exec by default:
// those that make the dynamic loader load or configure code.
var DefaultExecEnv = []string{"LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "GLIBC_TUNABLES"}

// ValidateEnvNames checks the names of environment variables to report.
func ValidateEnvNames(names []string) error {
	for _, n := range names {
		if n == "" || strings.ContainsAny(n, "=\x00") {
			return fmt.Errorf("environment variable name %q: must be non-empty, without '=' or NUL", n)
		}
	}
	return nil
}

// envMatch is one wanted variable found in an exec record.
type envMatch struct {
	key, value []byte
}

// matchEnv appends to dst the variables of raw (NUL-separated KEY=VALUE
// strings) whose names are in names. dropFirst and dropLast discard the
// first and last strings, which are cut when raw is one part of an
// environment the kernel read in pieces. It allocates only when dst grows.
func matchEnv(dst []envMatch, raw []byte, names []string, dropFirst, dropLast bool) []envMatch {
	if dropFirst {
		i := bytes.IndexByte(raw, 0)
		if i < 0 {
			return dst
		}
		raw = raw[i+1:]
	}
	for len(raw) > 0 {
		s := raw
		i := bytes.IndexByte(raw, 0)
		if i < 0 {
			if dropLast {
				break
			}
			raw = nil
		} else {
			s, raw = raw[:i], raw[i+1:]
		}
		eq := bytes.IndexByte(s, '=')
		if eq <= 0 {
			continue
		}
		key := s[:eq]
		for _, n := range names {
			if len(n) == len(key) && string(key) == n {
				dst = append(dst, envMatch{key: key, value: s[eq+1:]})
				break
			}
		}
	}
	return dst
}

// setEnv stores the matched variables in the entry's arena.
func setEnv(e *entry, a *arena, m []envMatch) {
	if len(m) == 0 {
		return
	}
	e.proc.Env = make([]event.EnvVar, len(m))
	for i, v := range m {
		e.proc.Env[i] = event.EnvVar{Key: a.add(v.key), Value: a.add(v.value)}
	}
}

// envSize is the arena room matched variables take.
func envSize(m []envMatch) int {
	n := 0
	for _, v := range m {
		n += len(v.key) + len(v.value)
	}
	return n
}

// argv0Differs reports whether argv0's base name is not the binary's.
func argv0Differs(argv0, binary []byte) bool {
	if len(argv0) == 0 {
		return false
	}
	return !bytes.Equal(baseName(argv0), baseName(binary))
}

func baseName(p []byte) []byte {
	if i := bytes.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}
