package datapath

import (
	"maps"
	"math/rand/v2"
	"testing"

	"github.com/vigilsec/vigil/networkpolicy"
)

// randomGroup returns random entries of one remote identity: prefixes of
// every length the policy map uses, over few ports so that they overlap.
func randomGroup(r *rand.Rand, remote uint32) networkpolicy.Group {
	g := networkpolicy.Group{}
	for n := r.IntN(12); n > 0; n-- {
		k := networkpolicy.PolicyKey{Remote: remote, Direction: networkpolicy.Direction(1 + r.IntN(2))}
		switch r.IntN(4) {
		case 0:
			k.PrefixLen = networkpolicy.PrefixIdentityDir
		case 1:
			k.PrefixLen = networkpolicy.PrefixProtocol
			k.Protocol = []networkpolicy.Protocol{networkpolicy.ProtoTCP, networkpolicy.ProtoUDP}[r.IntN(2)]
		default:
			bits := uint32(r.IntN(17))
			k.PrefixLen = networkpolicy.PrefixProtocol + bits
			k.Protocol = []networkpolicy.Protocol{networkpolicy.ProtoTCP, networkpolicy.ProtoUDP}[r.IntN(2)]
			port := uint16(r.IntN(16)) << 12 >> 12 // ports 0-15
			if bits < 16 {
				port &^= 1<<(16-bits) - 1
			}
			k.Port = port
		}
		g[k] = networkpolicy.PolicyEntry{Verdict: networkpolicy.Verdict(1 + r.IntN(3)), Reason: networkpolicy.Reason(1 + r.IntN(4)), Rule: uint32(r.IntN(4))}
	}
	return g
}

// lookup is the BPF programs' decision over a map in two steps, as they
// make it: the remote identity's entries in state r, then (when none
// matches) the wildcard's in state w, which may be a later one.
func lookup(r, w networkpolicy.Group, remote uint32, dir networkpolicy.Direction, proto networkpolicy.Protocol, port uint16) networkpolicy.PolicyEntry {
	if v, ok := longestMatch(r, remote, dir, proto, port); ok {
		return v
	}
	if v, ok := longestMatch(w, networkpolicy.IdentityNone, dir, proto, port); ok {
		return v
	}
	return networkpolicy.PolicyEntry{Verdict: networkpolicy.Allow, Reason: networkpolicy.ReasonNoPolicy}
}

// longestMatch is the LPM trie's lookup among the entries of one remote
// identity.
func longestMatch(g networkpolicy.Group, remote uint32, dir networkpolicy.Direction, proto networkpolicy.Protocol, port uint16) (networkpolicy.PolicyEntry, bool) {
	var best networkpolicy.PolicyEntry
	found, bestLen := false, uint32(0)
	for k, v := range g {
		if k.Remote != remote || k.Direction != dir {
			continue
		}
		if k.PrefixLen > networkpolicy.PrefixIdentityDir && k.Protocol != proto {
			continue
		}
		if bits := k.PrefixLen - networkpolicy.PrefixProtocol; k.PrefixLen > networkpolicy.PrefixProtocol && port>>(16-bits) != k.Port>>(16-bits) {
			continue
		}
		if !found || k.PrefixLen > bestLen {
			best, found, bestLen = v, true, k.PrefixLen
		}
	}
	return best, found
}

// TestInPlaceWritesKeepEveryLookupOldOrNew writes random changes of a
// remote identity's entries and of the wildcard's one at a time, in the
// order of inPlaceWrites, and checks at every step that each lookup answers
// as before the change or as after it, never a mixture: lookups made at
// one moment, and lookups that read the remote identity's entries at one
// moment and the wildcard's at a later one, unless a grace period came
// between (inPlaceWrites says where).
func TestInPlaceWritesKeepEveryLookupOldOrNew(t *testing.T) {
	const remote = 301
	w0 := networkpolicy.IdentityNone
	for seed := 0; seed < 600; seed++ {
		r := rand.New(rand.NewPCG(uint64(seed), 5))
		old := map[uint32]networkpolicy.Group{remote: randomGroup(r, remote), w0: randomGroup(r, w0)}
		next := map[uint32]networkpolicy.Group{}
		for _, id := range []uint32{remote, w0} {
			switch r.IntN(4) {
			case 0: // unchanged
			case 1:
				next[id] = nil // the group goes
			default:
				next[id] = randomGroup(r, id)
			}
		}
		after := maps.Clone(old)
		for id, g := range next {
			after[id] = g
		}
		ws, grace := inPlaceWrites(old, next, true)
		// The states after 0, 1, ... len(ws) writes.
		states := []map[uint32]networkpolicy.Group{{remote: maps.Clone(old[remote]), w0: maps.Clone(old[w0])}}
		for _, w := range ws {
			cur := states[len(states)-1]
			s := map[uint32]networkpolicy.Group{remote: maps.Clone(cur[remote]), w0: maps.Clone(cur[w0])}
			if s[w.k.Remote] == nil {
				s[w.k.Remote] = networkpolicy.Group{}
			}
			if w.del {
				delete(s[w.k.Remote], w.k)
			} else {
				s[w.k.Remote][w.k] = w.v
			}
			states = append(states, s)
		}
		last := states[len(states)-1]
		for _, id := range []uint32{remote, w0} {
			if !maps.Equal(last[id], after[id]) && !(len(last[id]) == 0 && len(after[id]) == 0) {
				t.Fatalf("seed %d: after the writes group %d is %v, want %v", seed, id, last[id], after[id])
			}
		}
		for i := range states {
			for j := i; j < len(states); j++ {
				// A program that read its remote identity in state i is done
				// before the write at index grace starts.
				if grace >= 0 && i <= grace && j > grace {
					break
				}
				for _, dir := range []networkpolicy.Direction{networkpolicy.Ingress, networkpolicy.Egress} {
					for _, proto := range []networkpolicy.Protocol{networkpolicy.ProtoTCP, networkpolicy.ProtoUDP} {
						for port := uint16(0); port < 17; port++ {
							got := lookup(states[i][remote], states[j][w0], remote, dir, proto, port)
							b := lookup(old[remote], old[w0], remote, dir, proto, port)
							a := lookup(after[remote], after[w0], remote, dir, proto, port)
							if got != b && got != a {
								t.Fatalf("seed %d: %s %s/%d read after %d writes (wildcard after %d of %d, grace before %d) answers %+v; before %+v, after %+v",
									seed, dir, proto, port, i, j, len(ws), grace, got, b, a)
							}
						}
					}
				}
			}
		}
	}
}
