package rules

import (
	"context"
	"fmt"
	"math/big"
	"regexp"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	opametrics "github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/builtins"
	"github.com/open-policy-agent/opa/v1/util"
)

// Builtins the Go evaluator computes, with OPA's semantics: an operand
// of the wrong type is an error in OPA, which (builtin errors not being
// strict) makes the call undefined; so it is here. The common ones are
// written in Go and allocate nothing; the other pure builtins listed in
// bridged run OPA's own implementation on their operands made Rego
// values.

// builtin makes the term of a call from its operands' terms; consts
// holds the values of the operands that are constants (defined for those
// only), such as a regular expression.
type builtin func(consts []val, args []term) (term, bool)

var nativeBuiltins map[string]builtin

func init() {
	nativeBuiltins = map[string]builtin{
		ast.Equal.Name:         binary(func(a, b val) val { return boolOf(equal(a, b)) }),
		ast.Equality.Name:      binary(func(a, b val) val { return boolOf(equal(a, b)) }),
		ast.NotEqual.Name:      binary(func(a, b val) val { return boolOf(!equal(a, b)) }),
		ast.LessThan.Name:      binary(func(a, b val) val { return boolOf(compare(a, b) < 0) }),
		ast.LessThanEq.Name:    binary(func(a, b val) val { return boolOf(compare(a, b) <= 0) }),
		ast.GreaterThan.Name:   binary(func(a, b val) val { return boolOf(compare(a, b) > 0) }),
		ast.GreaterThanEq.Name: binary(func(a, b val) val { return boolOf(compare(a, b) >= 0) }),
		ast.Member.Name:        binary(func(x, coll val) val { return boolOf(member(x, coll)) }),
		ast.StartsWith.Name:    strings2(strings.HasPrefix),
		ast.EndsWith.Name:      strings2(strings.HasSuffix),
		ast.Contains.Name:      strings2(strings.Contains),
		ast.RegexMatch.Name:    regexMatch,
		ast.Sprintf.Name:       sprintf,
		ast.ObjectGet.Name:     objectGet,
		ast.BitsAnd.Name:       bitsAnd,
		ast.IsNumber.Name:      isKind(numKind),
		ast.IsString.Name:      isKind(strKind),
		ast.IsBoolean.Name:     isKind(boolKind),
		ast.IsArray.Name:       isKind(arrKind),
		ast.IsObject.Name:      isKind(objKind),
		ast.IsSet.Name:         isKind(setKind),
		ast.IsNull.Name:        isKind(nullKind),
	}
}

// binary is a builtin of two operands, undefined when either is.
func binary(f func(a, b val) val) builtin {
	return func(_ []val, args []term) (term, bool) {
		if len(args) != 2 {
			return nil, false
		}
		x, y := args[0], args[1]
		return func(c *ectx) val {
			a := x(c)
			if !a.defined() {
				return undef
			}
			b := y(c)
			if !b.defined() {
				return undef
			}
			return f(a, b)
		}, true
	}
}

// member is Rego's "in": an element of an array or a set, or a value of an
// object; false for anything else.
func member(x, coll val) bool {
	switch coll.k {
	case arrKind, objKind, setKind:
	default:
		return false
	}
	if cn, ok := coll.n.(*constNode); ok {
		return cn.contains(x)
	}
	for i, n := 0, coll.n.size(); i < n; i++ {
		if _, v := coll.n.at(i); v.defined() && equal(x, v) {
			return true
		}
	}
	return false
}

func strings2(f func(s, t string) bool) builtin {
	return binary(func(a, b val) val {
		if a.k != strKind || b.k != strKind {
			return undef
		}
		return boolOf(f(a.s, b.s))
	})
}

func isKind(k kind) builtin {
	return func(_ []val, args []term) (term, bool) {
		if len(args) != 1 {
			return nil, false
		}
		x := args[0]
		return func(c *ectx) val {
			v := x(c)
			if !v.defined() {
				return undef
			}
			return boolOf(v.k == k)
		}, true
	}
}

// regexMatch compiles a constant pattern once, as OPA does (Go's regexp);
// a pattern computed at run time is left to OPA.
func regexMatch(consts []val, args []term) (term, bool) {
	if len(args) != 2 {
		return nil, false
	}
	if consts[0].k != strKind {
		return bridge(ast.RegexMatch.Name)(consts, args)
	}
	re, err := regexp.Compile(consts[0].s)
	if err != nil {
		return nil, false
	}
	x := args[1]
	return func(c *ectx) val {
		v := x(c)
		if v.k != strKind {
			return undef
		}
		return boolOf(re.MatchString(v.s))
	}, true
}

// sprintf formats with Go's fmt, converting the operands as OPA does.
func sprintf(_ []val, args []term) (term, bool) {
	if len(args) != 2 {
		return nil, false
	}
	format := args[0]
	list := args[1]
	return func(c *ectx) val {
		f := format(c)
		l := list(c)
		if f.k != strKind || l.k != arrKind {
			return undef
		}
		goArgs := make([]any, l.n.size())
		for i := range goArgs {
			_, v := l.n.at(i)
			goArgs[i] = sprintfArg(v, c.mat)
		}
		return strVal(fmt.Sprintf(f.s, goArgs...))
	}, true
}

// sprintfArg is the Go value OPA's sprintf formats for v.
func sprintfArg(v val, m *materializer) any {
	switch v.k {
	case numKind:
		if v.int {
			return v.i
		}
		ns := v.s
		if x, ok := util.Atoi64(ns); ok {
			return x
		}
		if strings.ContainsRune(ns, '.') {
			if f, ok := ast.Number(ns).Float64(); ok {
				return f
			}
			return ns
		}
		if b, ok := new(big.Int).SetString(ns, 10); ok {
			return b
		}
		return ns
	case strKind:
		return v.s
	}
	return toAST(v, m).String()
}

// objectGet is object.get(obj, key, default); a key that is an array is a
// path.
func objectGet(_ []val, args []term) (term, bool) {
	if len(args) != 3 {
		return nil, false
	}
	objT, keyT, dfltT := args[0], args[1], args[2]
	return func(c *ectx) val {
		obj := objT(c)
		k := keyT(c)
		d := dfltT(c)
		if obj.k != objKind || !k.defined() || !d.defined() {
			return undef
		}
		if k.k != arrKind {
			if v := obj.n.get(keyOf(k)); v.defined() {
				return v
			}
			return d
		}
		cur := obj
		for i, n := 0, k.n.size(); i < n; i++ {
			_, p := k.n.at(i)
			switch cur.k {
			case objKind, arrKind, setKind:
				cur = cur.n.get(keyOf(p))
			default:
				cur = undef
			}
			if !cur.defined() {
				return d
			}
		}
		return cur
	}, true
}

// bitsAnd is exact on integers; other operands go to OPA.
func bitsAnd(consts []val, args []term) (term, bool) {
	if len(args) != 2 {
		return nil, false
	}
	slow, _ := bridge(ast.BitsAnd.Name)(consts, args)
	x, y := args[0], args[1]
	return func(c *ectx) val {
		a := x(c)
		b := y(c)
		if a.k == numKind && a.int && b.k == numKind && b.int {
			return intVal(a.i & b.i)
		}
		if !a.defined() || !b.defined() {
			return undef
		}
		return slow(c)
	}, true
}

// bridged are the pure builtins evaluated by OPA's implementation: no
// input/output, clock, randomness or state.
var bridged = map[string]bool{}

func init() {
	for _, b := range []*ast.Builtin{
		ast.Lower, ast.Upper, ast.Trim, ast.TrimLeft, ast.TrimRight, ast.TrimPrefix, ast.TrimSuffix,
		ast.TrimSpace, ast.Split, ast.Concat, ast.Substring, ast.IndexOf, ast.Replace, ast.ReplaceN,
		ast.StringCount, ast.StringReverse, ast.FormatInt, ast.ToNumber, ast.Count, ast.Sum, ast.Product,
		ast.Max, ast.Min, ast.Sort, ast.Abs, ast.Round, ast.Ceil, ast.Floor, ast.Plus, ast.Minus,
		ast.Multiply, ast.Divide, ast.Rem, ast.ArrayConcat, ast.ArraySlice, ast.ArrayReverse,
		ast.ObjectKeys, ast.ObjectRemove, ast.ObjectUnion, ast.ObjectFilter, ast.RegexReplace,
		ast.RegexSplit, ast.RegexFind, ast.RegexIsValid, ast.RegexMatch, ast.BitsOr, ast.BitsAnd,
		ast.BitsXOr, ast.BitsNegate, ast.BitsShiftLeft, ast.BitsShiftRight, ast.NetCIDRContains,
		ast.Base64Encode, ast.Base64Decode, ast.HexEncode, ast.HexDecode, ast.TypeNameBuiltin,
		ast.And, ast.Or, ast.Intersection, ast.Union, ast.Base64IsValid,
	} {
		bridged[b.Name] = true
	}
}

// bridge calls OPA's implementation of the builtin name.
func bridge(name string) builtin {
	return func(_ []val, args []term) (term, bool) {
		fn := topdown.GetBuiltin(name)
		bi := ast.BuiltinMap[name]
		if fn == nil || bi == nil || !bridged[name] || len(args) != len(bi.Decl.FuncArgs().Args) {
			return nil, false
		}
		return func(c *ectx) val {
			ops := make([]*ast.Term, len(args))
			for i, a := range args {
				v := a(c)
				if !v.defined() {
					return undef
				}
				ops[i] = ast.NewTerm(toAST(v, c.mat))
			}
			out := undef
			bctx := topdown.BuiltinContext{Context: context.Background(), Metrics: opametrics.New(), Cache: builtins.Cache{}}
			err := fn(bctx, ops, func(t *ast.Term) error {
				out = fromAST(t.Value)
				return nil
			})
			if err != nil {
				return undef
			}
			return out
		}, true
	}
}
