package rules

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/vigilsec/vigil/event"
)

// Set is a compiled rule set.
type Set struct {
	rules  []*Rule
	byType map[event.Type]*typeQuery
	// paths are the input paths the guards read.
	paths *pathTable
}

// typeQuery evaluates every rule consuming one event type at once; single
// holds each rule's own query, to tell which rule failed when the joint
// evaluation does.
type typeQuery struct {
	rules  []*Rule
	guards []*guard
	joint  rego.PreparedEvalQuery
	single []rego.PreparedEvalQuery
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
	s := &Set{byType: map[event.Type]*typeQuery{}}
	for _, r := range rules {
		if !r.lib {
			s.rules = append(s.rules, r)
		}
	}
	slices.SortFunc(s.rules, func(a, b *Rule) int { return strings.Compare(a.ID, b.ID) })
	env := newGuardEnv(rules)
	s.paths = env.paths
	for _, r := range s.rules {
		g := buildGuard(env, r)
		for _, t := range r.Events {
			q := s.byType[t]
			if q == nil {
				q = &typeQuery{}
				s.byType[t] = q
			}
			q.rules = append(q.rules, r)
			q.guards = append(q.guards, g)
		}
	}
	for t, q := range s.byType {
		var joint []string
		for i, r := range q.rules {
			joint = append(joint, fmt.Sprintf("r%d = %s.alert", i, r.Package))
			pq, err := prepare(ctx, c, fmt.Sprintf("r0 = %s.alert", r.Package))
			if err != nil {
				return nil, fromOPA(r.File, err)
			}
			q.single = append(q.single, pq)
		}
		pq, err := prepare(ctx, c, strings.Join(joint, "; "))
		if err != nil {
			return nil, fmt.Errorf("rules for %s: %w", t, err)
		}
		q.joint = pq
	}
	return s, nil
}

func prepare(ctx context.Context, c *ast.Compiler, query string) (rego.PreparedEvalQuery, error) {
	body, err := ast.ParseBodyWithOpts(query, ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		return rego.PreparedEvalQuery{}, err
	}
	return rego.New(rego.ParsedQuery(body), rego.Compiler(c)).PrepareForEval(ctx)
}

// Rules returns the rules of the set, by id.
func (s *Set) Rules() []*Rule { return s.rules }

// Wants reports whether any rule consumes events of type t.
func (s *Set) Wants(t event.Type) bool { return s.byType[t] != nil }

// Eval evaluates the rules that consume type t against input, the event's
// exported JSON object. A rule that fails is reported in errs; the others'
// alerts are still returned. Rules whose guard the input fails are not
// evaluated: they cannot raise an alert on it.
func (s *Set) Eval(ctx context.Context, t event.Type, input ast.Value) (matches []Match, errs []RuleError) {
	q := s.byType[t]
	if q == nil {
		return nil, nil
	}
	obj, _ := input.(ast.Object)
	var gin *guardInput
	if obj != nil {
		gin = s.paths.input(obj)
	}
	var cand [8]int
	candidates := cand[:0]
	for i, g := range q.guards {
		if gin == nil || g.pass(gin) {
			candidates = append(candidates, i)
		}
	}
	switch {
	case len(candidates) == 0:
		return nil, nil
	case len(candidates) < len(q.rules):
		return s.evalEach(ctx, q, candidates, input)
	}
	rs, err := q.joint.Eval(ctx, rego.EvalParsedInput(input))
	if err == nil {
		for i, r := range q.rules {
			matches, errs = collect(rs, fmt.Sprintf("r%d", i), r, matches, errs)
		}
		return matches, errs
	}
	// One rule failed: evaluate each alone to report it and keep the others.
	return s.evalEach(ctx, q, candidates, input)
}

// evalEach evaluates the rules of q at the indexes given, one query each.
func (s *Set) evalEach(ctx context.Context, q *typeQuery, which []int, input ast.Value) (matches []Match, errs []RuleError) {
	for _, i := range which {
		r := q.rules[i]
		rs, err := q.single[i].Eval(ctx, rego.EvalParsedInput(input))
		if err != nil {
			errs = append(errs, RuleError{r, err})
			continue
		}
		matches, errs = collect(rs, "r0", r, matches, errs)
	}
	return matches, errs
}

func collect(rs rego.ResultSet, v string, r *Rule, matches []Match, errs []RuleError) ([]Match, []RuleError) {
	if len(rs) == 0 {
		return matches, errs
	}
	set, _ := rs[0].Bindings[v].([]any)
	for _, x := range set {
		d, ok := x.(string)
		if !ok {
			errs = append(errs, RuleError{r, fmt.Errorf("alert produced %T, want a description string", x)})
			continue
		}
		matches = append(matches, Match{Rule: r, Description: d})
	}
	return matches, errs
}
