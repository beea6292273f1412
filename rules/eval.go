package rules

import (
	"slices"
	"sync"
)

// The Go evaluator runs the alert bodies the compiler understood (see
// compile.go) over an input, with Rego's semantics: a body's expressions
// in order, each binding locals or failing, "some x in xs" trying every
// element, "not" succeeding when its expression has no solution, and
// functions evaluated by their definitions. Steps are closures chained at
// compile time (continuation passing), so an evaluation allocates nothing
// unless a value is made (a description, a builtin's result).

// status is what a step reports to its caller.
type status uint8

const (
	// more: look for further solutions (backtrack).
	more status = iota
	// stop: a solution was found and the search ends (guards, negations,
	// functions whose every definition gives true).
	stop
	// punt: the evaluator cannot decide this input exactly (a function
	// with two different values, which is a Rego error; a description
	// that is not a string): Rego must evaluate the rule.
	punt
)

// cont is a compiled step and the steps after it.
type cont func(c *ectx) status

// term is a compiled expression's value; undefined when it has none. A
// term that cannot decide sets c.punt.
type term func(c *ectx) val

// ectx is the state of one evaluation. Not safe for concurrent use; a
// pool serves the callers of Submit.
type ectx struct {
	view view
	root val
	env  []val
	base int
	// calls are the results of the functions being evaluated, innermost
	// last.
	calls []callResult
	// out collects the descriptions of a rule's bodies.
	out []string
	// punted is set when a term could not decide.
	punted bool
	mat    *materializer
	// rego are the rules of the last evaluation that Rego evaluated.
	rego []*Rule
	// memoVal holds the values computed once per input (compiler.memo),
	// valid where memoGen is gen.
	memoVal []val
	memoGen []uint32
	gen     uint32
	// cand is the candidate bodies of the input (typeIndex); useCand
	// tells eval they are known already (screened).
	cand    bitset
	useCand bool
}

type callResult struct {
	v    val
	have bool
}

var ectxPool = sync.Pool{New: func() any { return newEctx(nil) }}

func newEctx(m *materializer) *ectx {
	return &ectx{env: make([]val, 0, 64), calls: make([]callResult, 0, 8), mat: m}
}

// reset points c at an input, for a set whose plans memoize memo values.
func (c *ectx) reset(root val, memo int) {
	c.root, c.env, c.base, c.calls, c.out, c.punted = root, c.env[:0], 0, c.calls[:0], c.out[:0], false
	if len(c.memoGen) < memo {
		c.memoVal, c.memoGen = make([]val, memo), make([]uint32, memo)
	}
	c.gen++
	if c.gen == 0 {
		clear(c.memoGen)
		c.gen = 1
	}
}

// frame opens n slots of locals and returns the base to restore.
func (c *ectx) frame(n int) int {
	saved := c.base
	c.base = len(c.env)
	for range n {
		c.env = append(c.env, val{})
	}
	return saved
}

func (c *ectx) unframe(saved int) {
	c.env = c.env[:c.base]
	c.base = saved
}

// local is the slot of a local of the current frame.
func (c *ectx) local(slot int) *val { return &c.env[c.base+slot] }

func stopCont(*ectx) status { return stop }

// bodyPlan is one compiled alert body.
type bodyPlan struct {
	// guard runs the conditions the compiler understood, leaving out the
	// values only the description needs; stop when they hold.
	guard cont
	// full runs the whole body and adds its descriptions to c.out; nil
	// when some expression is not understood (Rego evaluates the rule).
	full  cont
	slots int
	// cond is a condition of the body for the type's index, if it has
	// one.
	cond *indexCond
}

// rulePlan is a rule's compiled alert bodies.
type rulePlan struct {
	bodies []bodyPlan
	// complete is set when every body is understood: the rule's alerts
	// are computed in Go.
	complete bool
}

// mayAlert reports whether the rule can raise an alert on c's input: the
// guard of a body holds, or cannot be decided. Only the bodies in cand
// (numbered from first) can hold; a nil cand runs them all.
func (p *rulePlan) mayAlert(c *ectx, cand bitset, first int) bool {
	for i := range p.bodies {
		if (cand == nil || cand.has(first+i)) && p.bodyMayHold(c, i) {
			return true
		}
	}
	return false
}

// bodyMayHold runs the guard of body i.
func (p *rulePlan) bodyMayHold(c *ectx, i int) bool {
	b := &p.bodies[i]
	saved := c.frame(b.slots)
	st := b.guard(c)
	c.unframe(saved)
	if st != more || c.punted {
		c.punted = false
		return true
	}
	return false
}

// alerts computes the descriptions a complete rule raises on c's input,
// sorted and without duplicates (a Rego set); ok false when Rego must
// decide. Only the bodies in cand (numbered from first) can hold; a nil
// cand runs them all.
func (p *rulePlan) alerts(c *ectx, cand bitset, first int) (descs []string, ok bool) {
	c.out = c.out[:0]
	for i := range p.bodies {
		if cand != nil && !cand.has(first+i) {
			continue
		}
		b := &p.bodies[i]
		saved := c.frame(b.slots)
		st := b.full(c)
		c.unframe(saved)
		if st == punt || c.punted {
			c.punted = false
			return nil, false
		}
	}
	if len(c.out) == 0 {
		return nil, true
	}
	slices.Sort(c.out)
	return slices.Compact(c.out), true
}

// funcPlan is a compiled function: its definitions, and its default.
type funcPlan struct {
	defs []funcDef
	dflt val
	// boolOnly: every definition's value is true, so the first solution
	// decides.
	boolOnly bool
}

// funcDef is one definition: argument patterns, body, value.
type funcDef struct {
	// args bind a local (slot >= 0), compare with a constant (slot -1,
	// eq), or match anything (slot -2).
	args  []argPattern
	body  cont // ends by recording the value
	slots int
}

type argPattern struct {
	slot int
	eq   val
}

// call evaluates f on args: undefined when no definition applies and
// there is no default; c.punted when definitions disagree.
func (f *funcPlan) call(c *ectx, args []val) val {
	c.calls = append(c.calls, callResult{})
	idx := len(c.calls) - 1
	for i := range f.defs {
		d := &f.defs[i]
		saved := c.frame(d.slots)
		matched := true
		for j, a := range d.args {
			switch {
			case a.slot >= 0:
				*c.local(a.slot) = args[j]
			case a.slot == -1:
				matched = matched && equal(args[j], a.eq)
			}
		}
		st := more
		if matched {
			st = d.body(c)
		}
		c.unframe(saved)
		if st == punt || c.punted {
			c.punted = true
			c.calls = c.calls[:idx]
			return undef
		}
		if st == stop {
			break
		}
	}
	r := c.calls[idx]
	c.calls = c.calls[:idx]
	if !r.have {
		return f.dflt
	}
	return r.v
}

// resultCont ends a function definition's body: it records the value and
// punts when a second, different one appears (Rego's conflict error).
func resultCont(value term, f *funcPlan) cont {
	return func(c *ectx) status {
		v := value(c)
		if c.punted {
			return punt
		}
		if !v.defined() {
			return more
		}
		r := &c.calls[len(c.calls)-1]
		if r.have && !equal(r.v, v) {
			return punt
		}
		r.v, r.have = v, true
		if f.boolOnly {
			return stop
		}
		return more
	}
}
