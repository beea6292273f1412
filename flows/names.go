package flows

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigilsec/vigil/event"
)

// Defaults of Names.
const (
	DefaultNamesMinTTL = 60 * time.Second
	DefaultNamesMax    = 65536
	// namesPerAddr bounds the names one local end holds for one address.
	namesPerAddr = 8
)

// NameOwner is who resolved a name: a pod (by namespace and name), else a
// cgroup of the host. Flows of a pod's other containers or of a restarted
// process share what it learned; other pods do not.
type NameOwner struct {
	Namespace, Pod string
	CgroupID       uint64
}

// OwnerOf is the owner of a local end: its pod, else its cgroup.
func OwnerOf(pod *event.Pod, cgroupID uint64) NameOwner {
	if pod != nil {
		return NameOwner{Namespace: pod.Namespace, Pod: pod.Name}
	}
	return NameOwner{CgroupID: cgroupID}
}

type nameKey struct {
	owner NameOwner
	addr  netip.Addr
}

type learnedName struct {
	name    string
	expires time.Time
}

// Names remembers which DNS names a local end resolved to which addresses,
// until the answer's TTL (at least MinTTL) runs out, so that later flows to
// those addresses carry the names (Hubble's destination_names). Safe for
// concurrent use.
type Names struct {
	minTTL time.Duration
	max    int

	mu sync.Mutex
	m  map[nameKey][]learnedName
	// swept is when a full table was last swept: at most once a second,
	// so that a table full of names in force costs no sweep per answer.
	swept time.Time
	// Dropped counts names not remembered because the table was full of
	// names in force.
	Dropped atomic.Uint64
}

// NewNames returns a table of at most max (owner, address) pairs; zero
// values take the defaults.
func NewNames(minTTL time.Duration, max int) *Names {
	if minTTL <= 0 {
		minTTL = DefaultNamesMinTTL
	}
	if max <= 0 {
		max = DefaultNamesMax
	}
	return &Names{minTTL: minTTL, max: max, m: map[nameKey][]learnedName{}}
}

// Learn records that owner resolved name (with or without its trailing
// dot) to addrs, for ttl.
func (n *Names) Learn(owner NameOwner, name string, addrs []netip.Addr, ttl time.Duration, now time.Time) {
	if n == nil || len(addrs) == 0 {
		return
	}
	name = strings.TrimSuffix(name, ".")
	expires := now.Add(max(ttl, n.minTTL))
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, a := range addrs {
		k := nameKey{owner, a.Unmap()}
		names, ok := n.m[k]
		if !ok && len(n.m) >= n.max {
			if now.Sub(n.swept) >= time.Second {
				n.sweepLocked(now)
				n.swept = now
			}
			if len(n.m) >= n.max {
				n.Dropped.Add(1)
				continue
			}
		}
		i := slices.IndexFunc(names, func(l learnedName) bool { return l.name == name })
		switch {
		case i >= 0:
			names[i].expires = later(names[i].expires, expires)
		case len(names) < namesPerAddr:
			names = append(names, learnedName{name, expires})
		default:
			// The name expiring first makes room.
			j := 0
			for i := range names {
				if names[i].expires.Before(names[j].expires) {
					j = i
				}
			}
			names[j] = learnedName{name, expires}
		}
		n.m[k] = names
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Lookup returns the names in force that owner resolved to addr, sorted
// (nil for none).
func (n *Names) Lookup(owner NameOwner, addr netip.Addr, now time.Time) []string {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	names := n.m[nameKey{owner, addr.Unmap()}]
	var out []string
	for _, l := range names {
		if l.expires.After(now) {
			out = append(out, l.name)
		}
	}
	slices.Sort(out)
	return out
}

// Sweep forgets what expired and returns how many pairs remain.
func (n *Names) Sweep(now time.Time) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sweepLocked(now)
	return len(n.m)
}

func (n *Names) sweepLocked(now time.Time) {
	for k, names := range n.m {
		names = slices.DeleteFunc(names, func(l learnedName) bool { return !l.expires.After(now) })
		if len(names) == 0 {
			delete(n.m, k)
		} else {
			n.m[k] = names
		}
	}
}

// Len is the number of (owner, address) pairs held.
func (n *Names) Len() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.m)
}
