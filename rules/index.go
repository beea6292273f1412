package rules

import (
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/vigilsec/vigil/event"
)

// Rule indexing: most alert bodies hold a condition on a value that every
// event of a type has, such as events.basename(p.binary) in {...},
// events.in_container(p) or p.binary_properties.memfd == true. Those
// values are computed once per event (memoized), and an index from their
// values to the bodies that can hold finds the bodies worth running: on
// an ordinary exec, one or two of the type's dozen. A body's condition in
// the index is one of its own expressions, so the index never rules out
// a body that could hold; the body's guard still runs in full.

// indexCond is a necessary condition of a body: the value of a memoized
// term is one of strs, or starts with one of prefixes, or, when both are
// nil, is defined and not false.
type indexCond struct {
	memo     int
	value    term
	strs     []string
	prefixes []string
	// typeKey is the event key the value is below (process_exec in
	// input.process_exec.process.binary): on events of another type it is
	// undefined, and the condition never holds.
	typeKey string
}

// indexCond returns the condition expression e states, when it is one.
func (cp *compiler) indexCond(sc *scope, e *ast.Expr) (indexCond, bool) {
	if e.Negated || len(e.With) > 0 {
		return indexCond{}, false
	}
	switch ts := e.Terms.(type) {
	case *ast.Term:
		return cp.truthyCond(sc, ts)
	case []*ast.Term:
		if e.IsAssignment() {
			return indexCond{}, false
		}
		op, args := e.Operator(), ts[1:]
		switch {
		case op.Equal(ast.Member.Ref()) && len(args) == 2:
			c, ok := cp.constant(sc, args[1])
			if !ok {
				return indexCond{}, false
			}
			if strs, ok := stringMembers(c); ok {
				return cp.stringCond(sc, args[0], strs)
			}
		case op.Equal(ast.StartsWith.Ref()) && len(args) == 2:
			// startswith(x, "/tmp/"), or startswith(x, d) after
			// some d in ["/tmp/", ...].
			var prefixes []string
			if c, ok := cp.constant(sc, args[1]); ok && c.k == strKind {
				prefixes = []string{c.s}
			} else if v, ok := args[1].Value.(ast.Var); ok {
				if slot, ok := sc.slots[v]; ok {
					prefixes = sc.ranges[slot]
				}
			}
			if prefixes != nil {
				c, ok := cp.truthyCond(sc, args[0])
				c.prefixes = prefixes
				return c, ok
			}
		case (op.Equal(ast.Equal.Ref()) || op.Equal(ast.Equality.Ref())) && len(args) == 2:
			for _, pair := range [][2]*ast.Term{{args[0], args[1]}, {args[1], args[0]}} {
				c, ok := cp.constant(sc, pair[1])
				switch {
				case !ok:
				case c.k == strKind:
					return cp.stringCond(sc, pair[0], []string{c.s})
				case c.k == boolKind && c.b:
					// x == true holds only where x is true: x is truthy.
					return cp.truthyCond(sc, pair[0])
				}
			}
		default:
			// is_shell(x) is basename(x) in shells, which shares its
			// value with the rules that look at basename(x).
			if mod, name, ok := cp.resolveFunc(sc, op); ok && name == "is_shell" && len(args) == 1 {
				if _, _, ok := cp.libCallKey(sc, mod, name, args); ok {
					if strs, ok := stringMembers(mod.consts["shells"]); ok {
						base := ast.CallTerm(ast.NewTerm(ast.MustParseRef(libPackage+".basename")), args[0])
						return cp.stringCond(sc, base, strs)
					}
				}
			}
			// A call of a library function computed in Go, such as
			// events.in_container(p): true or undefined.
			return cp.truthyCond(sc, ast.CallTerm(ts...))
		}
	}
	return indexCond{}, false
}

func (cp *compiler) truthyCond(sc *scope, t *ast.Term) (indexCond, bool) {
	return cp.stringCond(sc, t, nil)
}

func (cp *compiler) stringCond(sc *scope, t *ast.Term, strs []string) (indexCond, bool) {
	name, abs, ok := cp.memoKey(sc, t)
	if !ok {
		return indexCond{}, false
	}
	// The index runs before any body: its term reads input, no locals.
	v, ok := cp.term(newScope(sc.mod, map[ast.Var]bool{}), abs)
	if !ok {
		return indexCond{}, false
	}
	id, ok := cp.memo[name]
	if !ok {
		return indexCond{}, false
	}
	var typeKey string
	if _, ref, ok := cp.inputPath(sc, t); ok && len(ref) > 1 {
		typeKey = ref[1].Value.String()
	} else if call, ok := abs.Value.(ast.Call); ok && len(call) == 2 {
		if ref, ok := call[1].Value.(ast.Ref); ok && len(ref) > 1 {
			typeKey = ref[1].Value.String()
		}
	}
	return indexCond{memo: id, value: v, strs: strs, typeKey: typeKey}, true
}

// stringMembers returns the elements of a constant set or array, or the
// values of an object, when all are strings: what "x in c" compares x
// with.
func stringMembers(c val) ([]string, bool) {
	cn, ok := c.n.(*constNode)
	if !ok {
		return nil, false
	}
	out := []string{}
	for _, p := range cn.pairs {
		if p[1].k != strKind {
			return nil, false
		}
		out = append(out, p[1].s)
	}
	return out, true
}

// bitset is a set of bodies, by number.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

func (b bitset) set(i int)      { b[i/64] |= 1 << (i % 64) }
func (b bitset) has(i int) bool { return b[i/64]&(1<<(i%64)) != 0 }
func (b bitset) or(o bitset) {
	for i := range b {
		b[i] |= o[i]
	}
}

// typeIndex finds the bodies of a type's rules that can hold on an event.
type typeIndex struct {
	bodies int
	// first is the number of each rule's first body.
	first  []int
	always bitset // bodies without a condition in the index
	conds  []*condIndex
}

// condIndex holds the bodies with a condition on one memoized value.
type condIndex struct {
	value    term
	byStr    map[string]bitset
	prefixes []prefixBodies
	truthy   bitset
	all      bitset // every body here, for a value Go cannot decide
}

type prefixBodies struct {
	prefix string
	bodies bitset
}

// buildIndex indexes the bodies of plans for events of type t.
func buildIndex(plans []*rulePlan, t event.Type) *typeIndex {
	own := ast.StringTerm(t.String()).String()
	x := &typeIndex{}
	for _, p := range plans {
		x.first = append(x.first, x.bodies)
		x.bodies += len(p.bodies)
	}
	x.always = newBitset(x.bodies)
	byMemo := map[int]*condIndex{}
	for i, p := range plans {
		for j := range p.bodies {
			id := x.first[i] + j
			cond := p.bodies[j].cond
			if cond == nil {
				x.always.set(id)
				continue
			}
			if cond.typeKey != "" && cond.typeKey != own && isTypeKey(cond.typeKey) {
				continue // a body about events of another type: never a candidate
			}
			ci := byMemo[cond.memo]
			if ci == nil {
				ci = &condIndex{value: cond.value, byStr: map[string]bitset{}, truthy: newBitset(x.bodies), all: newBitset(x.bodies)}
				byMemo[cond.memo] = ci
				x.conds = append(x.conds, ci)
			}
			ci.all.set(id)
			if cond.prefixes != nil {
				for _, p := range cond.prefixes {
					b := newBitset(x.bodies)
					b.set(id)
					ci.prefixes = append(ci.prefixes, prefixBodies{p, b})
				}
				continue
			}
			if cond.strs == nil {
				ci.truthy.set(id)
				continue
			}
			for _, s := range cond.strs {
				if ci.byStr[s] == nil {
					ci.byStr[s] = newBitset(x.bodies)
				}
				ci.byStr[s].set(id)
			}
		}
	}
	return x
}

// isTypeKey reports whether k (a Rego string, quoted) is an event type's
// key.
func isTypeKey(k string) bool {
	for _, t := range event.Types() {
		if ast.StringTerm(t.String()).String() == k {
			return true
		}
	}
	return false
}

// candidates sets in c.cand the bodies that can hold on c's input.
func (x *typeIndex) candidates(c *ectx) bitset {
	n := (x.bodies + 63) / 64
	if cap(c.cand) < n {
		c.cand = make(bitset, n)
	}
	cand := c.cand[:n]
	copy(cand, x.always)
	for _, ci := range x.conds {
		v := ci.value(c)
		if c.punted {
			c.punted = false
			cand.or(ci.all)
			continue
		}
		if v.k == strKind {
			if b := ci.byStr[v.s]; b != nil {
				cand.or(b)
			}
			for i := range ci.prefixes {
				if strings.HasPrefix(v.s, ci.prefixes[i].prefix) {
					cand.or(ci.prefixes[i].bodies)
				}
			}
		}
		if v.truthy() {
			cand.or(ci.truthy)
		}
	}
	return cand
}
