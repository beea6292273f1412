package rules

import (
	"github.com/open-policy-agent/opa/v1/ast"
)

// constNode is a constant composite of a rule (a literal, or a constant
// rule such as names := {"nc", "socat"}), read at compile time so that
// looking a member up or testing membership allocates nothing.
type constNode struct {
	v     ast.Value
	pairs [][2]val // at's keys and values
	// byStr and byInt find members by key (objects), elements (sets), or
	// indexes (arrays, in byInt).
	byStr map[string]val
	byInt map[int64]val
	// hasStr and hasInt are the values (object members, elements) that
	// are strings and integers, for membership.
	hasStr map[string]bool
	hasInt map[int64]bool
	// exact is set when every key and value is a string or an integer
	// written canonically: then the maps answer every lookup of a string
	// or an integer, and other lookups find nothing.
	exact bool
}

// constVal reads a constant Rego value.
func constVal(v ast.Value) val {
	switch x := v.(type) {
	case *ast.Array:
		return nodeVal(arrKind, newConst(x))
	case ast.Object:
		return nodeVal(objKind, newConst(x))
	case ast.Set:
		return nodeVal(setKind, newConst(x))
	}
	return fromAST(v)
}

func newConst(v ast.Value) *constNode {
	n := &constNode{v: v, byStr: map[string]val{}, byInt: map[int64]val{},
		hasStr: map[string]bool{}, hasInt: map[int64]bool{}, exact: true}
	plain := func(x val) bool { return x.k == strKind || x.k == numKind && x.int }
	add := func(k, e val) {
		n.pairs = append(n.pairs, [2]val{k, e})
		n.exact = n.exact && plain(k) && plain(e)
		switch {
		case k.k == strKind:
			n.byStr[k.s] = e
		case k.k == numKind && k.int:
			n.byInt[k.i] = e
		}
		switch {
		case e.k == strKind:
			n.hasStr[e.s] = true
		case e.k == numKind && e.int:
			n.hasInt[e.i] = true
		}
	}
	switch x := v.(type) {
	case *ast.Array:
		for i := range x.Len() {
			e := constVal(x.Elem(i).Value)
			n.pairs = append(n.pairs, [2]val{intVal(int64(i)), e})
			n.byInt[int64(i)] = e
			n.exact = n.exact && plain(e)
			switch {
			case e.k == strKind:
				n.hasStr[e.s] = true
			case e.k == numKind && e.int:
				n.hasInt[e.i] = true
			}
		}
	case ast.Object:
		for _, k := range x.Keys() {
			add(constVal(k.Value), constVal(x.Get(k).Value))
		}
	case ast.Set:
		for _, t := range x.Slice() {
			e := constVal(t.Value)
			add(e, e)
		}
	}
	return n
}

func (n *constNode) term(*materializer) ast.Value { return n.v }
func (n *constNode) size() int                    { return len(n.pairs) }
func (n *constNode) at(i int) (val, val)          { return n.pairs[i][0], n.pairs[i][1] }

func (n *constNode) get(k key) val {
	if n.exact {
		switch {
		case k.isNum:
			if e, ok := n.byInt[int64(k.num)]; ok {
				return e
			}
			return undef
		case k.isName():
			if e, ok := n.byStr[k.s]; ok {
				return e
			}
			return undef
		case k.other.k == numKind && k.other.int:
			if _, isArr := n.v.(*ast.Array); !isArr {
				if e, ok := n.byInt[k.other.i]; ok {
					return e
				}
			}
			return undef
		}
	}
	return (&astNode{v: n.v}).get(k)
}

// contains is Rego's membership: an element of an array or a set, or a
// value of an object, equal to x.
func (n *constNode) contains(x val) bool {
	if n.exact {
		switch {
		case x.k == strKind:
			return n.hasStr[x.s]
		case x.k == numKind && x.int:
			return n.hasInt[x.i]
		case x.k == numKind:
			// A number written otherwise (1.0) may equal an integer.
		default:
			return false
		}
	}
	for _, p := range n.pairs {
		if equal(x, p[1]) {
			return true
		}
	}
	return false
}
