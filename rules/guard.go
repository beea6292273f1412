package rules

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// A guard is a necessary condition of a rule, read from its alert bodies
// and checked in Go before the rule's query runs: an event that fails it
// cannot raise the rule's alert, so Rego is not entered for it. Entering
// Rego costs microseconds even for a body that fails on its first
// expression; most events fail every rule's first expressions.
//
// Only expressions whose meaning is certain are read; the others leave the
// guard unconstrained, so a guard never hides an alert: when in doubt it
// lets the event through to Rego, which decides. A body's guard is the
// conjunction of what it reads (the body's expressions are all required);
// the rule's, the disjunction of its bodies'.
//
// Understood, with operands that are input references (input.a.b, or a
// local assigned one with :=, as in p := input.process_exec.process), or
// calls of the embedded library's basename or syscall_name on one:
//
//	operand == constant   constant == operand   operand = constant
//	operand in constant   (a constant set or array, literal or a constant
//	                      rule of the module or of a library)
//	startswith(operand, constant), startswith(operand, v) after
//	                      some v in constant
//	operand               (a reference alone: defined and not false)
//	lib.is_shell(operand), lib.in_container(operand)
type guard struct {
	// bodies holds each alert body's checks; nil when a body has none,
	// which makes the guard always true.
	bodies [][]check
}

// check is one necessary condition of a body: false only when the body
// certainly fails on in.
type check func(in *guardInput) bool

// guardInput is the input a set's guards read, with the values of the
// paths they resolved: guards of several rules share their paths
// (input.process_exec.process...), which are walked once per event.
type guardInput struct {
	obj   ast.Object
	paths *pathTable
	vals  []ast.Value
	state []uint8 // 0: not resolved, 1: defined, 2: undefined
}

// pathTable numbers the input paths of a set's guards, each by its parent
// path and last key; 0 is input itself.
type pathTable struct {
	parent []int
	key    []*ast.Term
	ids    map[string]int
}

func newPathTable() *pathTable {
	return &pathTable{parent: []int{-1}, key: []*ast.Term{nil}, ids: map[string]int{}}
}

// id returns the number of path, adding it and its prefixes.
func (t *pathTable) id(path []*ast.Term) int {
	id := 0
	for _, k := range path {
		name := fmt.Sprintf("%d\x00%s", id, k.Value.String())
		next, ok := t.ids[name]
		if !ok {
			next = len(t.parent)
			t.ids[name] = next
			t.parent = append(t.parent, id)
			t.key = append(t.key, k)
		}
		id = next
	}
	return id
}

func (t *pathTable) input(obj ast.Object) *guardInput {
	n := len(t.parent)
	in := &guardInput{obj: obj, paths: t, vals: make([]ast.Value, n), state: make([]uint8, n)}
	in.vals[0], in.state[0] = obj, 1
	return in
}

// get returns the value at path id, ok false when undefined.
func (in *guardInput) get(id int) (ast.Value, bool) {
	switch in.state[id] {
	case 1:
		return in.vals[id], true
	case 2:
		return nil, false
	}
	v, ok := in.get(in.paths.parent[id])
	if ok {
		obj, isObj := v.(ast.Object)
		v, ok = nil, false
		if isObj {
			if t := obj.Get(in.paths.key[id]); t != nil {
				v, ok = t.Value, true
			}
		}
	}
	in.vals[id], in.state[id] = v, 2
	if ok {
		in.state[id] = 1
	}
	return v, ok
}

// pass reports whether the rule may raise an alert on in.
func (g *guard) pass(in *guardInput) bool {
	if g == nil {
		return true
	}
	for _, b := range g.bodies {
		if b == nil {
			return true
		}
		ok := true
		for _, c := range b {
			if !c(in) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// libPackage is the package of the embedded library whose functions guards
// know; only the embedded module of that package is trusted to mean them.
const libPackage = "data.vigil.lib.events"

var syscallPrefix = regexp.MustCompile(`^__[a-z0-9]+_sys_`)

// libFuncs are the library's functions of one string a guard computes in
// Go, as lib.rego defines them.
var libFuncs = map[string]func(string) string{
	"basename": func(p string) string { return p[strings.LastIndexByte(p, '/')+1:] },
	"syscall_name": func(fn string) string {
		return strings.TrimPrefix(syscallPrefix.ReplaceAllString(fn, ""), "sys_")
	},
}

// guardEnv is what guards of a set can read besides the rule itself: the
// constant rules of every module by package, and whether the embedded
// library is loaded.
type guardEnv struct {
	consts map[string]map[string]ast.Value
	lib    bool
	paths  *pathTable
}

func newGuardEnv(rules []*Rule) *guardEnv {
	env := &guardEnv{consts: map[string]map[string]ast.Value{}, paths: newPathTable()}
	for _, r := range rules {
		if r.Package == libPackage && r.lib && strings.HasPrefix(r.File, "embedded:") {
			env.lib = true
		}
		env.consts[r.Package] = constants(r.module)
	}
	return env
}

// constants returns the module's rules defined once, without a body or
// arguments, as a constant: sets, arrays and scalars the bodies refer to.
func constants(m *ast.Module) map[string]ast.Value {
	out := map[string]ast.Value{}
	seen := map[string]int{}
	for _, r := range m.Rules {
		seen[r.Head.Name.String()]++
	}
	for _, r := range m.Rules {
		name := r.Head.Name.String()
		if seen[name] != 1 || len(r.Head.Args) > 0 || r.Head.Value == nil || r.Else != nil || r.Default ||
			len(r.Head.Ref()) != 1 || !unconditional(r) || !ast.IsConstant(r.Head.Value.Value) {
			continue
		}
		out[name] = r.Head.Value.Value
	}
	return out
}

// operand is an input reference, maybe through library functions: path
// below input, or, when label is set, rest below the argument of that
// label of the policy event at path (lib.arg(ev, label).rest...); fn
// applies to the value found.
type operand struct {
	path  []*ast.Term
	id    int // of path in the set's table
	label *ast.Term
	rest  []*ast.Term
	fn    func(string) string
}

// walk appends k to the operand's path.
func (o operand) walk(k ...*ast.Term) operand {
	if o.label != nil {
		o.rest = append(append([]*ast.Term{}, o.rest...), k...)
	} else {
		o.path = append(append([]*ast.Term{}, o.path...), k...)
	}
	return o
}

func find(cur ast.Value, path []*ast.Term) (ast.Value, bool) {
	for _, k := range path {
		obj, isObj := cur.(ast.Object)
		if !isObj {
			return nil, false
		}
		t := obj.Get(k)
		if t == nil {
			return nil, false
		}
		cur = t.Value
	}
	return cur, true
}

var labelKey = ast.StringTerm("label")

// value is the operand's value on in: ok false when undefined, known
// false when a library function is given something that is not a string
// (what Rego makes of that is left to Rego).
func (o operand) value(in *guardInput) (v ast.Value, ok, known bool) {
	cur, ok := in.get(o.id)
	if !ok {
		return nil, false, true
	}
	if o.label != nil {
		args, isArr := find(cur, []*ast.Term{ast.StringTerm("args")})
		arr, _ := args.(*ast.Array)
		if !isArr || arr == nil {
			return nil, false, true
		}
		var found ast.Value
		n := 0
		arr.Foreach(func(a *ast.Term) {
			if obj, isObj := a.Value.(ast.Object); isObj {
				if l := obj.Get(labelKey); l != nil && l.Value.Compare(o.label.Value) == 0 {
					found, n = obj, n+1
				}
			}
		})
		if n != 1 {
			// None: undefined. More: Rego's conflict error, its to report.
			return nil, false, n == 0
		}
		if cur, ok = find(found, o.rest); !ok {
			return nil, false, true
		}
	}
	if o.fn == nil {
		return cur, true, true
	}
	s, isStr := cur.(ast.String)
	if !isStr {
		return nil, false, false
	}
	return ast.String(o.fn(string(s))), true, true
}

// guardBuilder reads one module's alert bodies.
type guardBuilder struct {
	env     *guardEnv
	pkg     string
	imports map[string]string // alias -> package ref
}

func buildGuard(env *guardEnv, r *Rule) *guard {
	b := &guardBuilder{env: env, pkg: r.Package, imports: map[string]string{}}
	for _, imp := range r.module.Imports {
		ref, ok := imp.Path.Value.(ast.Ref)
		if !ok || !ref.HasPrefix(ast.DefaultRootRef) {
			continue
		}
		alias := imp.Alias.String()
		if imp.Alias == "" {
			alias = string(ref[len(ref)-1].Value.(ast.String))
		}
		b.imports[alias] = ref.String()
	}
	g := &guard{}
	for _, rule := range r.module.Rules {
		if rule.Head.Name.String() != "alert" {
			continue
		}
		g.bodies = append(g.bodies, b.body(rule.Body))
	}
	return g
}

func (b *guardBuilder) body(body ast.Body) []check {
	aliases := map[ast.Var]operand{}
	ranges := map[ast.Var]ast.Value{} // some v in constant
	assigned := map[ast.Var]bool{}
	var checks []check
	for _, expr := range body {
		if expr.IsAssignment() || expr.IsEquality() {
			ast.WalkVars(expr.Operand(0), func(v ast.Var) bool { assigned[v] = true; return false })
			if expr.IsEquality() {
				ast.WalkVars(expr.Operand(1), func(v ast.Var) bool { assigned[v] = true; return false })
			}
		}
		if decl, ok := expr.Terms.(*ast.SomeDecl); ok {
			// some x, y; some v in C; some k, v in C: x, y, k, v are locals.
			for _, sym := range decl.Symbols {
				switch s := sym.Value.(type) {
				case ast.Var:
					assigned[s] = true
				case ast.Call:
					for _, t := range s[1 : len(s)-1] {
						ast.WalkVars(t, func(v ast.Var) bool { assigned[v] = true; return false })
					}
				}
			}
			if len(decl.Symbols) == 1 {
				if call, ok := decl.Symbols[0].Value.(ast.Call); ok && len(call) == 3 && call[0].Value.Compare(ast.Member.Ref()) == 0 {
					if v, ok := call[1].Value.(ast.Var); ok {
						if c, ok := b.constant(call[2], assigned); ok {
							ranges[v] = c
						}
					}
				}
			}
			continue
		}
		if expr.Negated || len(expr.With) > 0 || expr.Generated {
			continue
		}
		if expr.IsAssignment() {
			if v, ok := expr.Operand(0).Value.(ast.Var); ok {
				if o, ok := b.operand(expr.Operand(1), aliases); ok {
					aliases[v] = o
				}
			}
			continue
		}
		if c := b.check(expr, aliases, ranges, assigned); c != nil {
			checks = append(checks, c)
		}
	}
	return checks
}

// check returns the condition expr states, nil when it is not understood.
func (b *guardBuilder) check(expr *ast.Expr, aliases map[ast.Var]operand, ranges map[ast.Var]ast.Value, assigned map[ast.Var]bool) check {
	if t, ok := expr.Terms.(*ast.Term); ok {
		if o, ok := b.operand(t, aliases); ok && o.fn == nil {
			return truthy(b.fix(o))
		}
		return nil
	}
	op := expr.Operator()
	if op == nil {
		return nil
	}
	args := expr.Operands()
	switch {
	case (op.Equal(ast.Equal.Ref()) || op.Equal(ast.Equality.Ref())) && len(args) == 2:
		for _, pair := range [][2]*ast.Term{{args[0], args[1]}, {args[1], args[0]}} {
			o, ok := b.operand(pair[0], aliases)
			if !ok {
				continue
			}
			c, ok := b.constant(pair[1], assigned)
			if !ok || !ast.IsScalar(c) {
				continue
			}
			o = b.fix(o)
			return func(in *guardInput) bool {
				v, ok, known := o.value(in)
				return !known || ok && v.Compare(c) == 0
			}
		}
	case op.Equal(ast.Member.Ref()) && len(args) == 2:
		o, ok := b.operand(args[0], aliases)
		if !ok {
			return nil
		}
		c, ok := b.constant(args[1], assigned)
		if !ok {
			return nil
		}
		elems := elements(c)
		if elems == nil {
			return nil
		}
		o = b.fix(o)
		if strs := stringSet(elems); strs != nil {
			return func(in *guardInput) bool {
				v, ok, known := o.value(in)
				if !known || !ok {
					return !known
				}
				s, isStr := v.(ast.String)
				return isStr && strs[string(s)]
			}
		}
		return func(in *guardInput) bool {
			v, ok, known := o.value(in)
			return !known || ok && elems.Contains(ast.NewTerm(v))
		}
	case op.Equal(ast.StartsWith.Ref()) && len(args) == 2:
		o, ok := b.operand(args[0], aliases)
		if !ok {
			return nil
		}
		var prefixes []string
		if c, ok := b.constant(args[1], assigned); ok {
			if s, ok := c.(ast.String); ok {
				prefixes = []string{string(s)}
			}
		} else if v, ok := args[1].Value.(ast.Var); ok && ranges[v] != nil {
			set := elements(ranges[v])
			if set == nil {
				return nil
			}
			all := true
			set.Foreach(func(t *ast.Term) {
				s, ok := t.Value.(ast.String)
				all = all && ok
				prefixes = append(prefixes, string(s))
			})
			if !all {
				return nil
			}
		}
		if prefixes == nil {
			return nil
		}
		o = b.fix(o)
		return func(in *guardInput) bool {
			v, ok, known := o.value(in)
			if !known || !ok {
				return !known
			}
			s, isStr := v.(ast.String)
			if !isStr {
				return true // left to Rego
			}
			for _, p := range prefixes {
				if strings.HasPrefix(string(s), p) {
					return true
				}
			}
			return false
		}
	case b.libFunc(op) == "is_shell" && len(args) == 1:
		shells := elements(b.env.consts[libPackage]["shells"])
		o, ok := b.operand(args[0], aliases)
		if !ok || o.fn != nil || o.label != nil && len(o.rest) == 0 || shells == nil {
			return nil
		}
		o.fn = libFuncs["basename"]
		o = b.fix(o)
		strs := stringSet(shells)
		if strs == nil {
			return nil
		}
		return func(in *guardInput) bool {
			v, ok, known := o.value(in)
			if !known || !ok {
				return !known
			}
			s, isStr := v.(ast.String)
			return isStr && strs[string(s)]
		}
	case b.libFunc(op) == "in_container" && len(args) == 1:
		o, ok := b.operand(args[0], aliases)
		if !ok || o.fn != nil {
			return nil
		}
		return truthy(b.fix(o.walk(ast.StringTerm("pod"), ast.StringTerm("namespace"))))
	}
	return nil
}

// fix numbers the operand's path in the set's table.
func (b *guardBuilder) fix(o operand) operand {
	o.id = b.env.paths.id(o.path)
	return o
}

// truthy is Rego's test of a reference alone: defined and not false.
func truthy(o operand) check {
	return func(in *guardInput) bool {
		v, ok, _ := o.value(in)
		return ok && v.Compare(ast.Boolean(false)) != 0
	}
}

// stringSet returns the members of s when all are strings, else nil.
func stringSet(s ast.Set) map[string]bool {
	out := map[string]bool{}
	all := true
	s.Foreach(func(t *ast.Term) {
		str, ok := t.Value.(ast.String)
		all = all && ok
		out[string(str)] = true
	})
	if !all {
		return nil
	}
	return out
}

// elements returns the members of a constant set or array.
func elements(v ast.Value) ast.Set {
	switch c := v.(type) {
	case ast.Set:
		return c
	case *ast.Array:
		s := ast.NewSet()
		c.Foreach(func(t *ast.Term) { s.Add(t) })
		return s
	}
	return nil
}

// libFunc returns the name of the embedded library's function op calls,
// "" when op is something else.
func (b *guardBuilder) libFunc(op ast.Ref) string {
	if !b.env.lib || len(op) != 2 {
		return ""
	}
	v, ok := op[0].Value.(ast.Var)
	if !ok || b.imports[string(v)] != libPackage {
		return ""
	}
	s, ok := op[1].Value.(ast.String)
	if !ok {
		return ""
	}
	return string(s)
}

// operand reads t as an input reference, through local aliases, maybe
// under a call of a library function.
func (b *guardBuilder) operand(t *ast.Term, aliases map[ast.Var]operand) (operand, bool) {
	switch v := t.Value.(type) {
	case ast.Var:
		o, ok := aliases[v]
		return o, ok
	case ast.Ref:
		var base operand
		switch head := v[0].Value.(type) {
		case ast.Var:
			if !head.Equal(ast.InputRootDocument.Value) {
				a, ok := aliases[head]
				if !ok || a.fn != nil {
					return operand{}, false
				}
				base = a
			}
		case ast.Call:
			a, ok := b.operand(v[0], aliases)
			if !ok || a.fn != nil {
				return operand{}, false
			}
			base = a
		default:
			return operand{}, false
		}
		for _, k := range v[1:] {
			if _, ok := k.Value.(ast.String); !ok {
				return operand{}, false
			}
		}
		return base.walk(v[1:]...), true
	case ast.Call:
		op, ok := v[0].Value.(ast.Ref)
		if !ok {
			return operand{}, false
		}
		if b.libFunc(op) == "arg" && len(v) == 3 {
			// arg(ev, label): the argument of that label of a policy event.
			ev, ok := b.operand(v[1], aliases)
			label, isStr := v[2].Value.(ast.String)
			if !ok || !isStr || ev.fn != nil || ev.label != nil {
				return operand{}, false
			}
			ev.label = ast.NewTerm(label)
			return ev, true
		}
		if len(v) != 2 {
			return operand{}, false
		}
		fn := libFuncs[b.libFunc(op)]
		if fn == nil {
			return operand{}, false
		}
		o, ok := b.operand(v[1], aliases)
		if !ok || o.fn != nil || o.label != nil && len(o.rest) == 0 {
			return operand{}, false
		}
		o.fn = fn
		return o, true
	}
	return operand{}, false
}

// constant reads t as a constant: a literal, a constant rule of the module
// (a variable the body does not assign), or of an imported package.
func (b *guardBuilder) constant(t *ast.Term, assigned map[ast.Var]bool) (ast.Value, bool) {
	switch v := t.Value.(type) {
	case ast.Var:
		if assigned[v] {
			return nil, false
		}
		c, ok := b.env.consts[b.pkg][string(v)]
		return c, ok
	case ast.Ref:
		head, ok := v[0].Value.(ast.Var)
		if !ok || len(v) != 2 || b.imports[string(head)] == "" {
			return nil, false
		}
		name, ok := v[1].Value.(ast.String)
		if !ok {
			return nil, false
		}
		c, ok := b.env.consts[b.imports[string(head)]][string(name)]
		return c, ok
	}
	if ast.IsConstant(t.Value) {
		return t.Value, true
	}
	return nil, false
}
