package rules

import (
	"strconv"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"
)

// kind is the type of a value a rule reads.
type kind uint8

const (
	undefined kind = iota
	nullKind
	boolKind
	numKind
	strKind
	arrKind
	objKind
	setKind
)

// val is one value of a rule's input, of a constant or of an expression,
// as the Go evaluator reads it: scalars held directly, composites as a
// node (of the typed view of an event, or of a Rego value). A val is
// small and copied; reading one allocates nothing.
//
// Numbers keep Rego's meaning: when int is set, i is the number and
// strconv.FormatInt(i) its text (every number of the typed view, and the
// integers of Rego values written that way); otherwise s is the number's
// text, and every operation on it goes through OPA's own functions.
type val struct {
	k   kind
	b   bool
	int bool
	i   int64
	s   string
	n   node
}

// node is a composite value: an object, an array or a set.
type node interface {
	// get returns the member at key (objects), the element at an index
	// (arrays), or the element itself (sets); undefined when absent.
	get(k key) val
	// size is the number of positions at reads.
	size() int
	// at returns the key and value at position i (for arrays the index,
	// for sets the element twice); an undefined value is an absent member
	// to skip.
	at(i int) (val, val)
	// term returns the node as a Rego value.
	term(m *materializer) ast.Value
}

// key is a member name or an index: s for names (id, when not zero, its
// number among the typed view's field names), num for indexes, other for
// anything else (a bool, a composite, a number that is not an index):
// only Rego values can have such members. Keys are small: they are passed
// by value on every lookup.
type key struct {
	s     string
	num   int
	id    uint16
	isNum bool
	other *val
}

// isName reports whether k is a member name.
func (k key) isName() bool { return !k.isNum && k.other == nil }

// value is k as a value.
func (k key) value() val {
	switch {
	case k.isNum:
		return intVal(int64(k.num))
	case k.other != nil:
		return *k.other
	}
	return strVal(k.s)
}

var (
	undef   = val{}
	trueVal = val{k: boolKind, b: true}
	nullVal = val{k: nullKind}
)

func strVal(s string) val        { return val{k: strKind, s: s} }
func intVal(i int64) val         { return val{k: numKind, int: true, i: i} }
func boolOf(b bool) val          { return val{k: boolKind, b: b} }
func nodeVal(k kind, n node) val { return val{k: k, n: n} }

// uintVal is a number of an unsigned field; past int64 it keeps its text.
func uintVal(u uint64) val {
	if u <= 1<<63-1 {
		return intVal(int64(u))
	}
	return val{k: numKind, s: strconv.FormatUint(u, 10)}
}

// numberVal reads a Rego number: an integer written canonically is held
// as one, any other keeps its text.
func numberVal(n ast.Number) val {
	if i, ok := util.Atoi64(string(n)); ok && strconv.FormatInt(i, 10) == string(n) {
		return intVal(i)
	}
	return val{k: numKind, s: string(n)}
}

// defined reports whether v has a value.
func (v val) defined() bool { return v.k != undefined }

// truthy is Rego's test of an expression's value: defined and not false.
func (v val) truthy() bool { return v.k != undefined && (v.k != boolKind || v.b) }

// numText is the text of a number.
func (v val) numText() string {
	if v.int {
		return strconv.FormatInt(v.i, 10)
	}
	return v.s
}

// keyOf makes a key of a value, to index with.
func keyOf(v val) key {
	switch v.k {
	case strKind:
		return nameKey(v.s)
	case numKind:
		if v.int && v.i >= 0 && v.i <= 1<<31-1 {
			return key{isNum: true, num: int(v.i)}
		}
	}
	return key{other: &v}
}

// nameKey is the key of a member name.
func nameKey(s string) key { return key{s: s, id: fieldIDs[s]} }

// fromAST reads a Rego value.
func fromAST(v ast.Value) val {
	switch x := v.(type) {
	case ast.Null:
		return nullVal
	case ast.Boolean:
		return boolOf(bool(x))
	case ast.Number:
		return numberVal(x)
	case ast.String:
		return strVal(string(x))
	case *ast.Array:
		return nodeVal(arrKind, &astNode{v: x})
	case ast.Object:
		return nodeVal(objKind, &astNode{v: x})
	case ast.Set:
		return nodeVal(setKind, &astNode{v: x})
	}
	return undef
}

// toAST returns v as a Rego value (allocating); nil when undefined.
func toAST(v val, m *materializer) ast.Value {
	switch v.k {
	case nullKind:
		return ast.Null{}
	case boolKind:
		return ast.Boolean(v.b)
	case numKind:
		return ast.Number(v.numText())
	case strKind:
		return ast.String(v.s)
	case arrKind, objKind, setKind:
		return v.n.term(m)
	}
	return nil
}

// keyTerm is a key as a Rego term.
func keyTerm(k key) *ast.Term {
	return ast.NewTerm(toAST(k.value(), nil))
}

// equal is Rego's ==: the same type and value.
func equal(a, b val) bool {
	if a.k != b.k || a.k == undefined {
		return false
	}
	switch a.k {
	case nullKind:
		return true
	case boolKind:
		return a.b == b.b
	case strKind:
		return a.s == b.s
	case numKind:
		if a.int && b.int {
			return a.i == b.i
		}
		return ast.NumberCompare(ast.Number(a.numText()), ast.Number(b.numText())) == 0
	}
	return ast.Compare(toAST(a, nil), toAST(b, nil)) == 0
}

// compare is Rego's ordering of values (for <, <=, >, >=).
func compare(a, b val) int {
	if a.k == b.k {
		switch a.k {
		case strKind:
			switch {
			case a.s < b.s:
				return -1
			case a.s > b.s:
				return 1
			}
			return 0
		case numKind:
			if a.int && b.int {
				switch {
				case a.i < b.i:
					return -1
				case a.i > b.i:
					return 1
				}
				return 0
			}
		}
	}
	return ast.Compare(toAST(a, nil), toAST(b, nil))
}

// astNode is a composite Rego value: of a recorded event's input, of a
// constant, or of a builtin's result.
type astNode struct {
	v ast.Value
	// keys are an object's keys, sorted, once at has been used.
	keys []*ast.Term
}

func (n *astNode) term(*materializer) ast.Value { return n.v }

func (n *astNode) get(k key) val {
	var t *ast.Term
	switch x := n.v.(type) {
	case ast.Object:
		t = x.Get(keyTerm(k))
	case *ast.Array:
		if k.isNum && k.num < x.Len() {
			t = x.Elem(k.num)
		} else if k.other != nil && k.other.k == numKind {
			t = x.Get(keyTerm(k))
		}
	case ast.Set:
		kt := keyTerm(k)
		if x.Contains(kt) {
			t = kt
		}
	}
	if t == nil {
		return undef
	}
	return fromAST(t.Value)
}

func (n *astNode) size() int {
	switch x := n.v.(type) {
	case ast.Object:
		return x.Len()
	case *ast.Array:
		return x.Len()
	case ast.Set:
		return x.Len()
	}
	return 0
}

func (n *astNode) at(i int) (val, val) {
	switch x := n.v.(type) {
	case ast.Object:
		if n.keys == nil {
			n.keys = x.Keys()
		}
		k := n.keys[i]
		return fromAST(k.Value), fromAST(x.Get(k).Value)
	case *ast.Array:
		return intVal(int64(i)), fromAST(x.Elem(i).Value)
	case ast.Set:
		e := fromAST(x.Slice()[i].Value)
		return e, e
	}
	return undef, undef
}
