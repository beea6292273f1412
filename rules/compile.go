package rules

import (
	"strconv"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// The compiler reads a rule's alert bodies into plans for the Go
// evaluator (eval.go). It understands, with operands that are input
// references, locals, constants and calls:
//
//   - x := term; term == term, !=, <, <=, >, >=, = between values;
//   - term in collection; some x in collection; some k, v in collection;
//   - not expression, of any expression it understands;
//   - a term alone (defined and not false);
//   - calls of builtins computed in Go (startswith, endswith, contains,
//     regex.match, sprintf, object.get, bits.and, is_*), of the pure
//     builtins OPA computes for it (bridged), of the embedded library's
//     functions, and of functions of the rule's module or of a library
//     whose definitions it understands in turn;
//   - constants: literals and constant rules of the module or a library.
//
// A body with anything else (with, every, comprehensions, rules with a
// body used as values, output arguments) is not complete: its plan keeps
// the conditions it understands as a guard, and Rego evaluates the rule
// when the guard holds. So an expression is never guessed at: either its
// meaning is Rego's, or Rego evaluates it.
type compiler struct {
	mods map[string]*moduleInfo // by package, "data.vigil.rules.x"
	// lib is set when the embedded library is loaded: its functions are
	// the ones computed in Go.
	lib   bool
	funcs map[string]*funcPlan // by package.name; nil: not understood
	busy  map[string]bool
	// memo numbers the values every evaluation of an input computes at
	// most once: input references with constant keys (through locals
	// assigned one, p := input.process_exec.process), and the library's
	// functions of one string on them. Rules share them.
	memo map[string]int
}

// moduleInfo is what the bodies of one module can refer to.
type moduleInfo struct {
	pkg     string
	pkgRef  ast.Ref
	rules   map[string][]*ast.Rule
	names   map[ast.Var]bool // every rule name, and first elements of rules with ref heads
	imports map[ast.Var]ast.Ref
	consts  map[string]val
}

func newCompiler(rules []*Rule) *compiler {
	cp := &compiler{mods: map[string]*moduleInfo{}, funcs: map[string]*funcPlan{}, busy: map[string]bool{},
		memo: map[string]int{}}
	for _, r := range rules {
		mi := &moduleInfo{pkg: r.Package, pkgRef: r.module.Package.Path, rules: map[string][]*ast.Rule{},
			names: map[ast.Var]bool{}, imports: map[ast.Var]ast.Ref{}, consts: map[string]val{}}
		for _, rule := range r.module.Rules {
			ref := rule.Head.Ref()
			if v, ok := ref[0].Value.(ast.Var); ok {
				mi.names[v] = true
			}
			if len(ref) == 1 {
				name := ref[0].Value.(ast.Var).String()
				mi.rules[name] = append(mi.rules[name], rule)
			}
		}
		for name, v := range constants(r.module) {
			mi.consts[name] = constVal(v)
		}
		for _, imp := range r.module.Imports {
			ref, ok := imp.Path.Value.(ast.Ref)
			if !ok || !(ref.HasPrefix(ast.DefaultRootRef) || ref.HasPrefix(ast.InputRootRef)) {
				continue
			}
			alias := imp.Alias
			if alias == "" {
				last, ok := ref[len(ref)-1].Value.(ast.String)
				if !ok {
					continue
				}
				alias = ast.Var(last)
			}
			mi.imports[alias] = ref
		}
		cp.mods[r.Package] = mi
		if r.Package == libPackage && r.lib && strings.HasPrefix(r.File, "embedded:") {
			cp.lib = true
		}
	}
	return cp
}

// constants returns the module's rules defined once, without a body or
// arguments, as a constant: sets, arrays, objects and scalars.
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

// plan compiles the alert bodies of r.
func (cp *compiler) plan(r *Rule) *rulePlan {
	mod := cp.mods[r.Package]
	p := &rulePlan{complete: true}
	for _, rule := range r.module.Rules {
		if rule.Head.Name.String() != "alert" {
			continue
		}
		b := cp.alertBody(mod, rule)
		p.bodies = append(p.bodies, b)
		p.complete = p.complete && b.full != nil
	}
	return p
}

// step is one compiled expression.
type step struct {
	build func(k cont) cont
	// assign: the step only binds locals (x := term), so a guard that
	// needs none of them leaves it out.
	assign bool
	binds  []int
	reads  []int
}

// scope is the locals of a body being compiled.
type scope struct {
	mod   *moduleInfo
	slots map[ast.Var]int
	// local are the names the body uses as locals (anywhere, bound or
	// not): a name that is not a module-level name. Until bound, such a
	// name is not understood.
	local map[ast.Var]bool
	size  *int
	reads *[]int
	// paths are the input references locals hold, by slot.
	paths map[int]ast.Ref
	// ranges are the strings a local of "some v in c" takes, by slot,
	// when c is a constant of strings.
	ranges map[int][]string
}

func newScope(mod *moduleInfo, local map[ast.Var]bool) *scope {
	return &scope{mod: mod, slots: map[ast.Var]int{}, local: local, size: new(int), reads: new([]int),
		paths: map[int]ast.Ref{}, ranges: map[int][]string{}}
}

// sub is a scope for a negated expression: it sees the locals bound so
// far, and what it binds stays inside.
func (sc *scope) sub() *scope {
	s := *sc
	s.slots = make(map[ast.Var]int, len(sc.slots))
	for k, v := range sc.slots {
		s.slots[k] = v
	}
	return &s
}

func (sc *scope) bind(v ast.Var) int {
	slot := *sc.size
	*sc.size++
	sc.slots[v] = slot
	return slot
}

// moduleName reports whether v names something of the module: input,
// data, a rule, an import.
func (mod *moduleInfo) moduleName(v ast.Var) bool {
	if v.Equal(ast.InputRootDocument.Value) || v.Equal(ast.DefaultRootDocument.Value) {
		return true
	}
	_, imported := mod.imports[v]
	return mod.names[v] || imported
}

// locals returns the names used as locals in body (and args): every
// variable outside the operator of a call that is not a module-level name.
func locals(mod *moduleInfo, body ast.Body, args []*ast.Term) map[ast.Var]bool {
	out := map[ast.Var]bool{}
	var vis *ast.GenericVisitor
	vis = ast.NewGenericVisitor(func(x any) bool {
		switch t := x.(type) {
		case ast.Var:
			if !mod.moduleName(t) {
				out[t] = true
			}
		case ast.Call:
			for _, op := range t[1:] {
				vis.Walk(op)
			}
			return true
		case *ast.Expr:
			if terms, ok := t.Terms.([]*ast.Term); ok && t.IsCall() {
				for _, op := range terms[1:] {
					vis.Walk(op)
				}
				for _, w := range t.With {
					vis.Walk(w)
				}
				return true
			}
		}
		return false
	})
	for _, a := range args {
		vis.Walk(a)
	}
	vis.Walk(body)
	return out
}

// alertBody compiles one body of alert.
func (cp *compiler) alertBody(mod *moduleInfo, rule *ast.Rule) bodyPlan {
	sc := newScope(mod, locals(mod, rule.Body, nil))
	var steps []step
	complete := true
	var cond *indexCond
	for _, e := range rule.Body {
		s, ok := cp.expr(sc, e)
		if !ok {
			complete = false
			continue
		}
		steps = append(steps, s...)
		if c, ok := cp.indexCond(sc, e); ok && (cond == nil || selectivity(c) > selectivity(*cond)) {
			cond = &c
		}
	}
	var head term
	if complete {
		h := rule.Head.Key
		if h == nil {
			h = rule.Head.Value
		}
		var ok bool
		if head, ok = cp.term(sc, h); !ok {
			complete = false
		}
	}
	plan := bodyPlan{guard: chain(guardSteps(steps), stopCont), cond: cond}
	if complete {
		plan.full = chain(steps, headCont(head))
	}
	plan.slots = *sc.size
	return plan
}

// selectivity ranks index conditions: a set of values before prefixes
// before a test of truth.
func selectivity(c indexCond) int {
	switch {
	case c.strs != nil:
		return 2
	case c.prefixes != nil:
		return 1
	}
	return 0
}

// chain links steps, the last continuing with end.
func chain(steps []step, end cont) cont {
	k := end
	for i := len(steps) - 1; i >= 0; i-- {
		k = steps[i].build(k)
	}
	return k
}

// guardSteps leaves out the assignments no other kept step reads: the
// values only the description needs (msg := sprintf(...)). Leaving out a
// step can only let more inputs through.
func guardSteps(steps []step) []step {
	live := map[int]bool{}
	keep := make([]bool, len(steps))
	for i := len(steps) - 1; i >= 0; i-- {
		s := steps[i]
		if s.assign {
			needed := false
			for _, b := range s.binds {
				needed = needed || live[b]
			}
			if !needed {
				continue
			}
		}
		keep[i] = true
		for _, r := range s.reads {
			live[r] = true
		}
	}
	var out []step
	for i, s := range steps {
		if keep[i] {
			out = append(out, s)
		}
	}
	return out
}

// headCont ends a complete body: the description is added to c.out; a
// value that is not a string is Rego's to report.
func headCont(head term) cont {
	return func(c *ectx) status {
		v := head(c)
		switch {
		case c.punted:
			return punt
		case !v.defined():
			return more
		case v.k != strKind:
			return punt
		}
		c.out = append(c.out, v.s)
		return more
	}
}

// expr compiles one expression of a body into its steps.
func (cp *compiler) expr(sc *scope, e *ast.Expr) ([]step, bool) {
	if len(e.With) > 0 || e.Generated {
		return nil, false
	}
	if e.Negated {
		return cp.negation(sc, e)
	}
	s, ok := cp.exprStep(sc, e)
	if !ok {
		return nil, false
	}
	return []step{s}, true
}

// exprStep compiles an expression that is not negated.
func (cp *compiler) exprStep(sc *scope, e *ast.Expr) (step, bool) {
	start := len(*sc.reads)
	s, ok := cp.exprInner(sc, e)
	if !ok {
		*sc.reads = (*sc.reads)[:start]
		return step{}, false
	}
	s.reads = append([]int(nil), (*sc.reads)[start:]...)
	return s, true
}

// negation compiles "not expr". As OPA's compiler does, the calls among
// expr's operands (and the composites at the head of its references) are
// evaluated before the negation, into locals: when one is undefined, the
// body fails, whatever the negation would say.
func (cp *compiler) negation(sc *scope, e *ast.Expr) ([]step, bool) {
	pre, inner := hoist(sc, e)
	var steps []step
	for _, h := range pre {
		s, ok := cp.exprStep(sc, h)
		if !ok {
			return nil, false
		}
		steps = append(steps, s)
	}
	start := len(*sc.reads)
	s, ok := cp.exprInner(sc.sub(), inner)
	if !ok || len(s.binds) > 0 {
		*sc.reads = (*sc.reads)[:start]
		return nil, false
	}
	body := s.build(stopCont)
	return append(steps, step{reads: append([]int(nil), (*sc.reads)[start:]...), build: func(k cont) cont {
		return func(c *ectx) status {
			st := body(c)
			if st == punt || c.punted {
				return punt
			}
			if st == stop {
				return more
			}
			return k(c)
		}
	}}), true
}

// hoist returns the assignments OPA's compiler makes of the calls in a
// negated expression's operands (innermost first), and the expression,
// not negated, reading them.
func hoist(sc *scope, e *ast.Expr) (pre []*ast.Expr, inner *ast.Expr) {
	local := func(t *ast.Term) *ast.Term {
		v := ast.Var("__vigil_hoisted" + strconv.Itoa(len(sc.local)) + "__")
		sc.local[v] = true
		pre = append(pre, ast.Assign.Expr(ast.NewTerm(v), t))
		return ast.NewTerm(v)
	}
	var term func(t *ast.Term) *ast.Term
	term = func(t *ast.Term) *ast.Term {
		switch v := t.Value.(type) {
		case ast.Call:
			c := make(ast.Call, len(v))
			c[0] = v[0]
			for i := 1; i < len(v); i++ {
				c[i] = term(v[i])
			}
			return local(ast.NewTerm(c))
		case ast.Ref:
			r := make(ast.Ref, len(v))
			for i := range v {
				r[i] = term(v[i])
			}
			switch r[0].Value.(type) {
			case *ast.Array, ast.Object, ast.Set:
				if !ast.IsConstant(r[0].Value) {
					r[0] = local(r[0])
				}
			}
			return ast.NewTerm(r)
		case *ast.Array:
			elems := make([]*ast.Term, v.Len())
			for i := range elems {
				elems[i] = term(v.Elem(i))
			}
			return ast.ArrayTerm(elems...)
		}
		return t
	}
	inner = e.Copy()
	inner.Negated = false
	switch ts := inner.Terms.(type) {
	case *ast.Term:
		inner.Terms = term(ts)
	case []*ast.Term:
		for i := 1; i < len(ts); i++ {
			ts[i] = term(ts[i])
		}
	}
	return pre, inner
}

func (cp *compiler) exprInner(sc *scope, e *ast.Expr) (step, bool) {
	switch t := e.Terms.(type) {
	case *ast.SomeDecl:
		return cp.some(sc, t)
	case *ast.Term:
		v, ok := cp.term(sc, t)
		if !ok {
			return step{}, false
		}
		return truthyStep(v), true
	case []*ast.Term:
		if e.IsAssignment() {
			return cp.assign(sc, t[1], t[2])
		}
		v, ok := cp.call(sc, t[0], t[1:])
		if !ok {
			return step{}, false
		}
		return truthyStep(v), true
	}
	return step{}, false
}

// truthyStep continues when v is defined and not false.
func truthyStep(v term) step {
	return step{build: func(k cont) cont {
		return func(c *ectx) status {
			x := v(c)
			if c.punted {
				return punt
			}
			if !x.truthy() {
				return more
			}
			return k(c)
		}
	}}
}

// newLocal binds the variable t declares; -1 for a wildcard.
func newLocal(sc *scope, t *ast.Term) (int, bool) {
	v, ok := t.Value.(ast.Var)
	if !ok {
		return 0, false
	}
	if v.IsWildcard() {
		return -1, true
	}
	if _, bound := sc.slots[v]; bound || !sc.local[v] {
		return 0, false
	}
	return sc.bind(v), true
}

func (cp *compiler) assign(sc *scope, lhs, rhs *ast.Term) (step, bool) {
	v, ok := cp.term(sc, rhs)
	if !ok {
		return step{}, false
	}
	slot, ok := newLocal(sc, lhs)
	if !ok || slot < 0 {
		return step{}, false
	}
	if _, ref, ok := cp.inputPath(sc, rhs); ok {
		sc.paths[slot] = ref
	}
	return step{assign: true, binds: []int{slot}, build: func(k cont) cont {
		return func(c *ectx) status {
			x := v(c)
			if c.punted {
				return punt
			}
			if !x.defined() {
				return more
			}
			*c.local(slot) = x
			return k(c)
		}
	}}, true
}

// some compiles "some v in coll" and "some k, v in coll".
func (cp *compiler) some(sc *scope, d *ast.SomeDecl) (step, bool) {
	if len(d.Symbols) != 1 {
		return step{}, false
	}
	call, ok := d.Symbols[0].Value.(ast.Call)
	if !ok {
		return step{}, false
	}
	var kt, vt, ct *ast.Term
	switch {
	case len(call) == 3 && call[0].Value.Compare(ast.Member.Ref()) == 0:
		vt, ct = call[1], call[2]
	case len(call) == 4 && call[0].Value.Compare(ast.MemberWithKey.Ref()) == 0:
		kt, vt, ct = call[1], call[2], call[3]
	default:
		return step{}, false
	}
	coll, ok := cp.term(sc, ct)
	if !ok {
		return step{}, false
	}
	kslot := -1
	if kt != nil {
		if kslot, ok = newLocal(sc, kt); !ok {
			return step{}, false
		}
	}
	vslot, ok := newLocal(sc, vt)
	if !ok {
		return step{}, false
	}
	if c, ok := cp.constant(sc, ct); ok && vslot >= 0 {
		if strs, ok := stringMembers(c); ok {
			sc.ranges[vslot] = strs
		}
	}
	var binds []int
	for _, s := range []int{kslot, vslot} {
		if s >= 0 {
			binds = append(binds, s)
		}
	}
	return step{binds: binds, build: func(k cont) cont {
		return func(c *ectx) status {
			cv := coll(c)
			if c.punted {
				return punt
			}
			switch cv.k {
			case arrKind, objKind, setKind:
			default:
				return more
			}
			for i, n := 0, cv.n.size(); i < n; i++ {
				key, v := cv.n.at(i)
				if !v.defined() {
					continue
				}
				if kslot >= 0 {
					*c.local(kslot) = key
				}
				if vslot >= 0 {
					*c.local(vslot) = v
				}
				if st := k(c); st != more {
					return st
				}
			}
			return more
		}
	}}, true
}

func constTerm(v val) term { return func(*ectx) val { return v } }

// term compiles a term to its value.
func (cp *compiler) term(sc *scope, t *ast.Term) (term, bool) {
	if c, ok := cp.constant(sc, t); ok {
		return constTerm(c), true
	}
	switch v := t.Value.(type) {
	case ast.Null, ast.Boolean, ast.Number, ast.String:
		return constTerm(fromAST(v)), true
	case ast.Var:
		return cp.name(sc, v)
	case ast.Ref:
		return cp.ref(sc, v)
	case ast.Call:
		return cp.call(sc, v[0], v[1:])
	case *ast.Array:
		if ast.IsConstant(v) {
			return constTerm(constVal(v)), true
		}
		elems := make([]term, v.Len())
		for i := range elems {
			e, ok := cp.term(sc, v.Elem(i))
			if !ok {
				return nil, false
			}
			elems[i] = e
		}
		return func(c *ectx) val {
			a := make(litArray, len(elems))
			for i, e := range elems {
				if a[i] = e(c); !a[i].defined() {
					return undef
				}
			}
			return nodeVal(arrKind, &a)
		}, true
	case ast.Object, ast.Set:
		if ast.IsConstant(v) {
			return constTerm(constVal(v)), true
		}
	}
	return nil, false
}

// name compiles a variable: a local, input, or a constant rule.
func (cp *compiler) name(sc *scope, v ast.Var) (term, bool) {
	if slot, ok := sc.slots[v]; ok {
		*sc.reads = append(*sc.reads, slot)
		return func(c *ectx) val { return *c.local(slot) }, true
	}
	if sc.local[v] {
		return nil, false
	}
	if v.Equal(ast.InputRootDocument.Value) {
		return func(c *ectx) val { return c.root }, true
	}
	if c, ok := sc.mod.consts[string(v)]; ok {
		return constTerm(c), true
	}
	if ref, ok := sc.mod.imports[v]; ok && ref.HasPrefix(ast.InputRootRef) {
		return cp.ref(sc, ref)
	}
	return nil, false
}

// ref compiles a reference: its head (a local, input, a constant, a call,
// a literal) and its keys.
func (cp *compiler) ref(sc *scope, ref ast.Ref) (term, bool) {
	var base term
	rest := ref[1:]
	switch h := ref[0].Value.(type) {
	case ast.Var:
		_, isLocal := sc.slots[h]
		switch {
		case isLocal || sc.local[h] || h.Equal(ast.InputRootDocument.Value):
			t, ok := cp.name(sc, h)
			if !ok {
				return nil, false
			}
			base = t
		case h.Equal(ast.DefaultRootDocument.Value):
			c, n, ok := cp.data(ref)
			if !ok {
				return nil, false
			}
			base, rest = constTerm(c), ref[n:]
		default:
			if imp, ok := sc.mod.imports[h]; ok {
				return cp.ref(sc, append(imp.Copy(), rest...))
			}
			t, ok := cp.name(sc, h)
			if !ok {
				return nil, false
			}
			base = t
		}
	case ast.Call:
		t, ok := cp.call(sc, h[0], h[1:])
		if !ok {
			return nil, false
		}
		base = t
	case *ast.Array, ast.Object, ast.Set:
		t, ok := cp.term(sc, ref[0])
		if !ok {
			return nil, false
		}
		base = t
	default:
		return nil, false
	}
	if path, abs, isPath := cp.inputPath(sc, ast.NewTerm(ref)); isPath && len(rest) > 0 {
		// input.a.b.c is input.a.b's member c: the prefixes other rules
		// read are computed once too.
		if len(abs) > 2 {
			prefix, ok := cp.ref(newScope(sc.mod, map[ast.Var]bool{}), abs[:len(abs)-1])
			if !ok {
				return nil, false
			}
			base, rest = prefix, abs[len(abs)-1:]
		}
		t, ok := cp.keys(sc, base, rest)
		if !ok {
			return nil, false
		}
		return cp.memoized(path, t), true
	}
	return cp.keys(sc, base, rest)
}

// keys compiles the lookups of a reference after its head.
func (cp *compiler) keys(sc *scope, base term, rest []*ast.Term) (term, bool) {
	if len(rest) == 0 {
		return base, true
	}
	type lookup struct {
		k key
		t term // the key's term, when not a constant
	}
	steps := make([]lookup, len(rest))
	for i, kt := range rest {
		if c, ok := cp.constant(sc, kt); ok && c.k != arrKind && c.k != objKind && c.k != setKind {
			steps[i].k = keyOf(c)
			continue
		}
		t, ok := cp.term(sc, kt)
		if !ok {
			return nil, false
		}
		steps[i].t = t
	}
	return func(c *ectx) val {
		v := base(c)
		for i := range steps {
			switch v.k {
			case objKind, arrKind, setKind:
			default:
				return undef
			}
			k := steps[i].k
			if steps[i].t != nil {
				kv := steps[i].t(c)
				if !kv.defined() {
					return undef
				}
				k = keyOf(kv)
			}
			if v = v.n.get(k); !v.defined() {
				return undef
			}
		}
		return v
	}, true
}

// memoized computes t once per input: rules share the value.
func (cp *compiler) memoized(name string, t term) term {
	id, ok := cp.memo[name]
	if !ok {
		id = len(cp.memo)
		cp.memo[name] = id
	}
	return func(c *ectx) val {
		if c.memoGen[id] == c.gen {
			return c.memoVal[id]
		}
		v := t(c)
		if c.punted {
			return v
		}
		c.memoGen[id], c.memoVal[id] = c.gen, v
		return v
	}
}

// inputPath returns the text of t when it is a reference below input
// with constant keys (through locals holding one), which names one value
// per input, and the reference from input.
func (cp *compiler) inputPath(sc *scope, t *ast.Term) (string, ast.Ref, bool) {
	var ref ast.Ref
	switch v := t.Value.(type) {
	case ast.Var:
		ref = ast.Ref{t}
	case ast.Ref:
		ref = v
	default:
		return "", nil, false
	}
	head, ok := ref[0].Value.(ast.Var)
	if !ok {
		return "", nil, false
	}
	var abs ast.Ref
	switch slot, isLocal := sc.slots[head]; {
	case isLocal:
		if abs, ok = sc.paths[slot]; !ok {
			return "", nil, false
		}
	case sc.local[head]:
		return "", nil, false
	case head.Equal(ast.InputRootDocument.Value):
		abs = ast.InputRootRef
	default:
		imp, ok := sc.mod.imports[head]
		if !ok || !imp.HasPrefix(ast.InputRootRef) {
			return "", nil, false
		}
		abs = imp
	}
	abs = append(abs.Copy(), ref[1:]...)
	var b strings.Builder
	b.WriteString("input")
	for _, k := range abs[1:] {
		switch k.Value.(type) {
		case ast.String, ast.Number, ast.Boolean, ast.Null:
			b.WriteString("[" + k.String() + "]")
		default:
			return "", nil, false
		}
	}
	return b.String(), abs, true
}

// constant returns the value of t when it is a constant: a literal, a
// constant rule of the module or of an imported package, or a constant
// reference into one.
func (cp *compiler) constant(sc *scope, t *ast.Term) (val, bool) {
	switch v := t.Value.(type) {
	case ast.Null, ast.Boolean, ast.Number, ast.String:
		return fromAST(v), true
	case *ast.Array, ast.Object, ast.Set:
		if ast.IsConstant(v) {
			return constVal(v), true
		}
	case ast.Var:
		if _, isLocal := sc.slots[v]; isLocal || sc.local[v] {
			return undef, false
		}
		c, ok := sc.mod.consts[string(v)]
		return c, ok
	case ast.Ref:
		head, ok := v[0].Value.(ast.Var)
		if !ok {
			return undef, false
		}
		var c val
		rest := v[1:]
		switch imp, imported := sc.mod.imports[head]; {
		case sc.local[head]:
			return undef, false
		case imported && imp.HasPrefix(ast.DefaultRootRef):
			full := append(imp.Copy(), rest...)
			var n int
			if c, n, ok = cp.data(full); !ok {
				return undef, false
			}
			rest = full[n:]
		case head.Equal(ast.DefaultRootDocument.Value):
			var n int
			if c, n, ok = cp.data(v); !ok {
				return undef, false
			}
			rest = v[n:]
		default:
			if c, ok = cp.constant(sc, v[0]); !ok {
				return undef, false
			}
		}
		for _, k := range rest {
			kc, ok := cp.constant(sc, k)
			if !ok || kc.k == arrKind || kc.k == objKind || kc.k == setKind {
				return undef, false
			}
			c = walk(c, keyOf(kc))
		}
		return c, c.defined()
	}
	return undef, false
}

// module returns the module whose package is the longest prefix of ref,
// and the name after it.
func (cp *compiler) module(ref ast.Ref) (*moduleInfo, string, int, bool) {
	var best *moduleInfo
	for _, mod := range cp.mods {
		n := len(mod.pkgRef)
		if len(ref) > n && ref[:n].Equal(mod.pkgRef) && (best == nil || n > len(best.pkgRef)) {
			best = mod
		}
	}
	if best == nil {
		return nil, "", 0, false
	}
	n := len(best.pkgRef)
	name, ok := ref[n].Value.(ast.String)
	return best, string(name), n + 1, ok
}

// data resolves a reference below data to a constant rule of a module:
// the constant and how many terms of ref it names.
func (cp *compiler) data(ref ast.Ref) (val, int, bool) {
	mod, name, n, ok := cp.module(ref)
	if !ok {
		return undef, 0, false
	}
	c, ok := mod.consts[name]
	return c, n, ok
}

// function resolves a reference below data to a module and function name.
func (cp *compiler) function(ref ast.Ref) (*moduleInfo, string, bool) {
	mod, name, n, ok := cp.module(ref)
	if !ok || n != len(ref) {
		return nil, "", false
	}
	return mod, name, true
}

// call compiles a call of op on operands.
func (cp *compiler) call(sc *scope, op *ast.Term, operands []*ast.Term) (term, bool) {
	opRef, ok := op.Value.(ast.Ref)
	if !ok {
		return nil, false
	}
	if _, ok := opRef[0].Value.(ast.Var); !ok {
		return nil, false
	}
	args := make([]term, len(operands))
	consts := make([]val, len(operands))
	for i, o := range operands {
		if args[i], ok = cp.term(sc, o); !ok {
			return nil, false
		}
		consts[i], _ = cp.constant(sc, o)
	}
	mod, name, ok := cp.resolveFunc(sc, opRef)
	if !ok {
		return nil, false
	}
	if mod != nil {
		if mod.pkg == libPackage && cp.lib {
			if t, ok := cp.nativeLib(name, args); ok {
				if key, _, isPath := cp.libCallKey(sc, mod, name, operands); isPath {
					t = cp.memoized(key, t)
				}
				return t, true
			}
		}
		return cp.userCall(mod, name, args)
	}
	// A builtin.
	bname := opRef.String()
	bi := ast.BuiltinMap[bname]
	if bi == nil || len(operands) != len(bi.Decl.FuncArgs().Args) {
		return nil, false
	}
	if nb := nativeBuiltins[bname]; nb != nil {
		return nb(consts, args)
	}
	if bridged[bname] {
		return bridge(bname)(consts, args)
	}
	return nil, false
}

// resolveFunc resolves the operator of a call: a function of the
// module, of an imported package or below data (mod set), or a builtin
// (mod nil).
func (cp *compiler) resolveFunc(sc *scope, opRef ast.Ref) (*moduleInfo, string, bool) {
	head, ok := opRef[0].Value.(ast.Var)
	if !ok {
		return nil, "", false
	}
	if _, isLocal := sc.slots[head]; isLocal || sc.local[head] {
		return nil, "", false
	}
	switch imp, imported := sc.mod.imports[head]; {
	case len(opRef) == 1 && sc.mod.names[head]:
		return sc.mod, string(head), true
	case imported:
		return cp.function(append(imp.Copy(), opRef[1:]...))
	case head.Equal(ast.DefaultRootDocument.Value):
		return cp.function(opRef)
	case sc.mod.names[head] || head.Equal(ast.InputRootDocument.Value):
		return nil, "", false
	}
	return nil, "", true
}

// libCallKey is the memo name of a call of the library's function name on
// one input reference, and the reference from input.
func (cp *compiler) libCallKey(sc *scope, mod *moduleInfo, name string, operands []*ast.Term) (string, ast.Ref, bool) {
	if mod == nil || mod.pkg != libPackage || !cp.lib || len(operands) != 1 {
		return "", nil, false
	}
	path, abs, ok := cp.inputPath(sc, operands[0])
	if !ok {
		return "", nil, false
	}
	return name + "(" + path + ")", abs, true
}

// memoKey is the memo name of t when its value is computed once per
// input: an input reference with constant keys, or a library function
// computed in Go on one; and t written from input, without locals.
func (cp *compiler) memoKey(sc *scope, t *ast.Term) (string, *ast.Term, bool) {
	switch v := t.Value.(type) {
	case ast.Ref:
		if len(v) > 1 {
			name, abs, ok := cp.inputPath(sc, t)
			return name, ast.NewTerm(abs), ok
		}
	case ast.Call:
		if opRef, ok := v[0].Value.(ast.Ref); ok {
			if mod, name, ok := cp.resolveFunc(sc, opRef); ok {
				key, abs, ok := cp.libCallKey(sc, mod, name, v[1:])
				return key, ast.CallTerm(v[0], ast.NewTerm(abs)), ok
			}
		}
	}
	return "", nil, false
}

// userCall compiles a call of a function of mod.
func (cp *compiler) userCall(mod *moduleInfo, name string, args []term) (term, bool) {
	fp := cp.compileFunc(mod, name)
	if fp == nil || len(fp.defs) == 0 && !fp.dflt.defined() || len(fp.defs) > 0 && len(fp.defs[0].args) != len(args) {
		return nil, false
	}
	return func(c *ectx) val {
		var buf [8]val
		a := buf[:0]
		if len(args) > len(buf) {
			a = make([]val, 0, len(args))
		}
		for _, t := range args {
			v := t(c)
			if !v.defined() || c.punted {
				return undef
			}
			a = append(a, v)
		}
		return fp.call(c, a)
	}, true
}

// compileFunc compiles the definitions of function name of mod, once;
// nil when any is not understood.
func (cp *compiler) compileFunc(mod *moduleInfo, name string) *funcPlan {
	id := mod.pkg + "." + name
	if fp, ok := cp.funcs[id]; ok {
		return fp
	}
	if cp.busy[id] {
		return nil
	}
	cp.busy[id] = true
	defer delete(cp.busy, id)
	fp := &funcPlan{boolOnly: true}
	arity := -1
	for _, r := range mod.rules[name] {
		if len(r.Head.Args) == 0 || arity >= 0 && len(r.Head.Args) != arity {
			fp = nil
			break
		}
		arity = len(r.Head.Args)
		if r.Default {
			if r.Head.Value == nil || !ast.IsConstant(r.Head.Value.Value) {
				fp = nil
				break
			}
			fp.dflt = constVal(r.Head.Value.Value)
			continue
		}
		d, isTrue, ok := cp.funcDef(mod, r, fp)
		if !ok {
			fp = nil
			break
		}
		fp.boolOnly = fp.boolOnly && isTrue
		fp.defs = append(fp.defs, d)
	}
	if arity < 0 {
		fp = nil
	}
	cp.funcs[id] = fp
	return fp
}

// funcDef compiles one definition of a function.
func (cp *compiler) funcDef(mod *moduleInfo, r *ast.Rule, fp *funcPlan) (funcDef, bool, bool) {
	if r.Else != nil {
		return funcDef{}, false, false
	}
	sc := newScope(mod, locals(mod, r.Body, r.Head.Args))
	var d funcDef
	for _, a := range r.Head.Args {
		switch v := a.Value.(type) {
		case ast.Var:
			if v.IsWildcard() {
				d.args = append(d.args, argPattern{slot: -2})
				continue
			}
			if _, dup := sc.slots[v]; dup {
				return funcDef{}, false, false
			}
			d.args = append(d.args, argPattern{slot: sc.bind(v)})
		default:
			if !ast.IsConstant(v) {
				return funcDef{}, false, false
			}
			d.args = append(d.args, argPattern{slot: -1, eq: constVal(v)})
		}
	}
	var steps []step
	for _, e := range r.Body {
		s, ok := cp.expr(sc, e)
		if !ok {
			return funcDef{}, false, false
		}
		steps = append(steps, s...)
	}
	value := constTerm(trueVal)
	isTrue := true
	if r.Head.Value != nil {
		var ok bool
		if value, ok = cp.term(sc, r.Head.Value); !ok {
			return funcDef{}, false, false
		}
		isTrue = r.Head.Value.Value.Compare(ast.Boolean(true)) == 0
	}
	d.body = chain(steps, resultCont(value, fp))
	d.slots = *sc.size
	return d, isTrue, true
}

// litArray is an array written with values computed at run time.
type litArray []val

func (n *litArray) get(k key) val {
	if k.isNum && k.num < len(*n) {
		return (*n)[k.num]
	}
	return undef
}
func (n *litArray) size() int           { return len(*n) }
func (n *litArray) at(i int) (val, val) { return intVal(int64(i)), (*n)[i] }
func (n *litArray) term(m *materializer) ast.Value {
	terms := make([]*ast.Term, len(*n))
	for i, v := range *n {
		terms[i] = ast.NewTerm(toAST(v, m))
	}
	return ast.NewArray(terms...)
}
