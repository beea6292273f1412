package rules

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"

	"github.com/vigilsec/vigil/event"
)

// Set is a compiled rule set.
type Set struct {
	rules  []*Rule
	byType map[event.Type]*typeRules
	store  storage.Store
	// memo is how many values an evaluation computes once (compiler.memo).
	memo int
}

// typeRules are the rules consuming one event type: each one's Go plan,
// and its Rego query for when the plan cannot decide.
type typeRules struct {
	rules []*Rule
	plans []*rulePlan
	rego  []*regoQuery
	index *typeIndex
}

// Match is one alert a rule raised: the rule and the description.
type Match struct {
	Rule        *Rule
	Description string
}

// RuleError is a rule that failed while evaluating an event.
type RuleError struct {
	Rule *Rule
	Err  error
}

// Compile compiles rules into a set. Ids and packages must be unique.
// Errors name the file and line of each problem.
func Compile(ctx context.Context, rules []*Rule) (*Set, error) {
	var errs Errors
	ids := map[string]*Rule{}
	pkgs := map[string]*Rule{}
	files := map[string]bool{}
	modules := map[string]*ast.Module{}
	for _, r := range rules {
		if o := ids[r.ID]; o != nil {
			errs = append(errs, &Error{r.File, 0, fmt.Sprintf("rule id %s is also the id of %s", r.ID, o.File)})
			continue
		}
		if o := pkgs[r.Package]; o != nil {
			errs = append(errs, &Error{r.File, rowOf(r.module.Package.Location), fmt.Sprintf("package %s is also the package of %s", strings.TrimPrefix(r.Package, "data."), o.File)})
			continue
		}
		if files[r.File] {
			errs = append(errs, &Error{r.File, 0, "loaded twice"})
			continue
		}
		ids[r.ID], pkgs[r.Package], files[r.File] = r, r, true
		modules[r.File] = r.module
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	c := ast.NewCompiler().WithStrict(false)
	c.Compile(modules)
	if c.Failed() {
		return nil, fromOPA("", c.Errors)
	}
	s := &Set{byType: map[event.Type]*typeRules{}, store: newStore()}
	for _, r := range rules {
		if !r.lib {
			s.rules = append(s.rules, r)
		}
	}
	slices.SortFunc(s.rules, func(a, b *Rule) int { return strings.Compare(a.ID, b.ID) })
	cp := newCompiler(rules)
	for _, r := range s.rules {
		p := cp.plan(r)
		q, err := prepareAlerts(c, s.store, r.Package)
		if err != nil {
			return nil, fromOPA(r.File, err)
		}
		for _, t := range r.Events {
			tr := s.byType[t]
			if tr == nil {
				tr = &typeRules{}
				s.byType[t] = tr
			}
			tr.rules = append(tr.rules, r)
			tr.plans = append(tr.plans, p)
			tr.rego = append(tr.rego, q)
		}
	}
	for t, tr := range s.byType {
		tr.index = buildIndex(tr.plans, t)
	}
	s.memo = len(cp.memo)
	return s, nil
}

// Rules returns the rules of the set, by id.
func (s *Set) Rules() []*Rule { return s.rules }

// Wants reports whether any rule consumes events of type t.
func (s *Set) Wants(t event.Type) bool { return s.byType[t] != nil }

// MayAlert reports whether a rule can raise an alert on ev, an event as
// it would be exported from node nodeName: whether, for some rule
// consuming its type, the conditions of an alert body hold (or cannot be
// decided without Rego). It reads the event in place and allocates
// nothing; it is safe for concurrent use.
func (s *Set) MayAlert(ev *event.Event, nodeName string) bool {
	_, may := s.screen(ev, nodeName)
	return may
}

// screened is the result of screen: the bodies of the type's rules
// whose guards hold on an event (numbered as the type's index numbers
// them), when the type has at most 64 bodies; all otherwise.
type screened struct {
	bodies uint64
	all    bool
}

// screen runs the guards of the rules of ev's type on ev.
func (s *Set) screen(ev *event.Event, nodeName string) (screened, bool) {
	tr := s.byType[ev.Type]
	if tr == nil {
		return screened{}, false
	}
	c := ectxPool.Get().(*ectx)
	c.view = view{ev: ev, nodeName: nodeName}
	c.reset(c.view.root(), s.memo)
	cand := tr.index.candidates(c)
	var out screened
	may := false
	for i, p := range tr.plans {
		first := tr.index.first[i]
		for j := range p.bodies {
			if !cand.has(first+j) || !p.bodyMayHold(c, j) {
				continue
			}
			may = true
			if first+j >= 64 {
				out.all = true
			} else {
				out.bodies |= 1 << (first + j)
			}
		}
	}
	c.view, c.root = view{}, undef
	ectxPool.Put(c)
	return out, may
}

// Eval evaluates the rules that consume type t against input, the event's
// exported JSON object as a Rego value. A rule that fails is reported in
// errs; the others' alerts are still returned.
func (s *Set) Eval(ctx context.Context, t event.Type, input ast.Value) (matches []Match, errs []RuleError) {
	c := ectxPool.Get().(*ectx)
	defer ectxPool.Put(c)
	c.reset(fromAST(input), s.memo)
	defer func() { c.root = undef }()
	return s.eval(ctx, c, t, func() ast.Value { return input })
}

// evalEvent evaluates the rules that consume ev's type against ev, as it
// would be exported from node nodeName, with c.
func (s *Set) evalEvent(ctx context.Context, c *ectx, ev *event.Event, nodeName string, sc screened) ([]Match, []RuleError) {
	c.view = view{ev: ev, nodeName: nodeName}
	c.reset(c.view.root(), s.memo)
	if tr := s.byType[ev.Type]; tr != nil && !sc.all {
		// Only the bodies whose guards held on the event can hold now.
		c.cand = append(c.cand[:0], sc.bodies)
		c.useCand = true
	}
	return s.eval(ctx, c, ev.Type, func() ast.Value { return c.mat.input(&c.view) })
}

// eval evaluates the rules of type t on c's input: in Go where the
// rule's plan decides, in Rego (on input(), made once) where it does not.
// Matches come by rule, in the set's order, each rule's descriptions
// sorted.
func (s *Set) eval(ctx context.Context, c *ectx, t event.Type, input func() ast.Value) (matches []Match, errs []RuleError) {
	tr := s.byType[t]
	if tr == nil {
		return nil, nil
	}
	c.rego = c.rego[:0]
	var in ast.Value
	cand := c.cand
	if !c.useCand {
		cand = tr.index.candidates(c)
	}
	c.useCand = false
	for i, p := range tr.plans {
		r := tr.rules[i]
		first := tr.index.first[i]
		if p.complete {
			if descs, ok := p.alerts(c, cand, first); ok {
				for _, d := range descs {
					matches = append(matches, Match{Rule: r, Description: d})
				}
				continue
			}
		} else if !p.mayAlert(c, cand, first) {
			continue
		}
		if in == nil {
			in = input()
		}
		c.rego = append(c.rego, r)
		var err error
		if matches, err = regoAlerts(ctx, tr.rego[i], r, in, matches); err != nil {
			errs = append(errs, RuleError{Rule: r, Err: err})
		}
	}
	return matches, errs
}
