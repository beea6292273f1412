package dns

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The automaton is the form of a set of patterns the BPF datapath can run:
// a deterministic automaton over the characters of a name, walked one
// character at a time with one array lookup each, so classifying a name of
// at most 253 characters is a bounded loop. Its states are numbered from 1
// (the start); 0 is the dead state, which no name leaves.
const (
	// NumSymbols is the size of the automaton's alphabet: a-z (upper case
	// folded), 0-9, '-', '_', '.', and one symbol for every other byte.
	NumSymbols = 40
	// SymDot and SymOther are the symbols of '.' and of bytes names of a
	// policy cannot hold.
	SymDot   = 38
	SymOther = 39
	// MaxStates bounds the automaton (the datapath's table has room for
	// this many states).
	MaxStates = 4096
)

// Symbol returns the automaton's symbol for a byte of a name. The BPF
// program computes the same (dns_symbol in netpol.bpf.c).
func Symbol(c byte) uint32 {
	switch {
	case c >= 'a' && c <= 'z':
		return uint32(c - 'a')
	case c >= 'A' && c <= 'Z':
		return uint32(c - 'A')
	case c >= '0' && c <= '9':
		return 26 + uint32(c-'0')
	case c == '-':
		return 36
	case c == '_':
		return 37
	case c == '.':
		return SymDot
	}
	return SymOther
}

// Automaton is the compiled form of a list of patterns.
type Automaton struct {
	// Next holds the transitions: Next[state*NumSymbols+symbol] is the
	// next state (0: dead). len(Next) = States*NumSymbols, state 0
	// included.
	Next []uint32
	// Accept holds, per state, 0 when no pattern matches a name ending
	// there, or 1 + the index in Sets of the patterns that do.
	Accept []uint32
	// Sets are the distinct non-empty sets of pattern indices (ascending)
	// that accept some name, in order of discovery.
	Sets [][]int
}

// States returns the number of states, the dead state included.
func (a *Automaton) States() int { return len(a.Accept) }

// nfaState is a position in one pattern: for a pattern with wildcards or a
// name, an index into its text; for the match-all pattern, 0 (at the start
// of a label) or 1 (inside one).
type nfaState struct {
	pat int
	pos int
}

// Compile builds the automaton of patterns; pattern i is index i in the
// Sets.
func Compile(patterns []Pattern) (*Automaton, error) {
	return compile(patterns, MaxStates)
}

func compile(patterns []Pattern, limit int) (*Automaton, error) {
	c := &compiler{pats: patterns, limit: limit, ids: map[string]uint32{}, setIDs: map[string]uint32{}}
	c.a.Next = make([]uint32, NumSymbols) // the dead state
	c.a.Accept = []uint32{0}
	var start []nfaState
	for i := range patterns {
		start = append(start, nfaState{pat: i, pos: 0})
	}
	if _, err := c.state(c.closure(start)); err != nil {
		return nil, err
	}
	for s := 1; s < len(c.a.Accept); s++ {
		for sym := uint32(0); sym < NumSymbols; sym++ {
			next := c.step(c.sets[s-1], sym)
			if len(next) == 0 {
				continue
			}
			id, err := c.state(next)
			if err != nil {
				return nil, err
			}
			c.a.Next[s*NumSymbols+int(sym)] = id
		}
	}
	return &c.a, nil
}

type compiler struct {
	pats   []Pattern
	limit  int
	a      Automaton
	sets   [][]nfaState // NFA states of DFA state i+1
	ids    map[string]uint32
	setIDs map[string]uint32
}

func key(states []nfaState) string {
	var b strings.Builder
	for _, s := range states {
		b.WriteString(strconv.Itoa(s.pat))
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(s.pos))
		b.WriteByte(',')
	}
	return b.String()
}

// state returns the number of the DFA state of a closed, sorted set of
// NFA states, making it when new.
func (c *compiler) state(states []nfaState) (uint32, error) {
	k := key(states)
	if id, ok := c.ids[k]; ok {
		return id, nil
	}
	if len(c.a.Accept) >= c.limit {
		return 0, fmt.Errorf("the %d DNS patterns need more than %d automaton states; use fewer wildcards", len(c.pats), c.limit)
	}
	id := uint32(len(c.a.Accept))
	c.ids[k] = id
	c.sets = append(c.sets, states)
	c.a.Next = append(c.a.Next, make([]uint32, NumSymbols)...)
	var acc []int
	for _, s := range states {
		if c.accepts(s) && (len(acc) == 0 || acc[len(acc)-1] != s.pat) {
			acc = append(acc, s.pat)
		}
	}
	var a uint32
	if len(acc) > 0 {
		sk := fmt.Sprint(acc)
		set, ok := c.setIDs[sk]
		if !ok {
			c.a.Sets = append(c.a.Sets, acc)
			set = uint32(len(c.a.Sets))
			c.setIDs[sk] = set
		}
		a = set
	}
	c.a.Accept = append(c.a.Accept, a)
	return id, nil
}

func (c *compiler) accepts(s nfaState) bool {
	p := c.pats[s.pat]
	if p.MatchAll() {
		return s.pos == 1
	}
	return s.pos == len(p.Text)
}

// closure adds the states reachable without a character (past the stars)
// and sorts.
func (c *compiler) closure(states []nfaState) []nfaState {
	seen := map[nfaState]bool{}
	var out []nfaState
	for len(states) > 0 {
		s := states[len(states)-1]
		states = states[:len(states)-1]
		if seen[s] {
			continue
		}
		seen[s] = true
		out = append(out, s)
		p := c.pats[s.pat]
		if !p.MatchAll() && s.pos < len(p.Text) && p.Text[s.pos] == '*' {
			states = append(states, nfaState{s.pat, s.pos + 1})
		}
	}
	slices.SortFunc(out, func(a, b nfaState) int {
		if a.pat != b.pat {
			return a.pat - b.pat
		}
		return a.pos - b.pos
	})
	return out
}

// step returns the closed set of NFA states after one symbol.
func (c *compiler) step(states []nfaState, sym uint32) []nfaState {
	var next []nfaState
	label := sym < SymDot
	for _, s := range states {
		p := c.pats[s.pat]
		if p.MatchAll() {
			switch {
			case label:
				next = append(next, nfaState{s.pat, 1})
			case sym == SymDot && s.pos == 1:
				next = append(next, nfaState{s.pat, 0})
			}
			continue
		}
		if s.pos >= len(p.Text) {
			continue
		}
		switch ch := p.Text[s.pos]; {
		case ch == '*':
			if label {
				next = append(next, s)
			}
		case Symbol(ch) == sym:
			next = append(next, nfaState{s.pat, s.pos + 1})
		}
	}
	if len(next) == 0 {
		return nil
	}
	return c.closure(next)
}

// Run walks a name (without its trailing dot) through the automaton as the
// datapath does and returns the accepting value of the state it ends in (0
// when no pattern matches; else 1 + an index into Sets).
func (a *Automaton) Run(name string) uint32 {
	if len(name) == 0 || len(name) > MaxNameLen {
		return 0
	}
	s := uint32(1)
	for i := 0; i < len(name) && s != 0; i++ {
		s = a.Next[int(s)*NumSymbols+int(Symbol(name[i]))]
	}
	return a.Accept[s]
}
