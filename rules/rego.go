package rules

import (
	"context"
	"fmt"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// regoQuery is one rule's alert set as a prepared Rego query, for the
// rules the Go evaluator leaves to Rego. It runs on OPA's evaluator
// (topdown) directly: the rego package would link OPA's bundles, loaders,
// Wasm compiler and planner, which rules never use, and start a goroutine
// per evaluation to watch for cancellation.
type regoQuery struct {
	compiler *ast.Compiler
	queryC   ast.QueryCompiler
	query    ast.Body
	store    storage.Store
}

// resultVar is the variable the query binds to the rule's alert set.
var resultVar = ast.Var("r0")

func prepareAlerts(c *ast.Compiler, store storage.Store, pkg string) (*regoQuery, error) {
	return prepare(c, store, fmt.Sprintf("%s = %s.alert", resultVar, pkg))
}

func prepare(c *ast.Compiler, store storage.Store, query string) (*regoQuery, error) {
	body, err := ast.ParseBodyWithOpts(query, ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		return nil, err
	}
	qc := c.QueryCompiler()
	compiled, err := qc.Compile(body)
	if err != nil {
		return nil, err
	}
	return &regoQuery{compiler: c, queryC: qc, query: compiled, store: store}, nil
}

func newStore() storage.Store { return inmem.New() }

// eval evaluates the query on input and returns the value bound to r0:
// nil when the query has no result.
func (q *regoQuery) eval(ctx context.Context, input ast.Value) (ast.Value, error) {
	txn, err := q.store.NewTransaction(ctx)
	if err != nil {
		return nil, err
	}
	defer q.store.Abort(ctx, txn)
	tq := topdown.NewQuery(q.query).WithCompiler(q.compiler).WithQueryCompiler(q.queryC).
		WithStore(q.store).WithTransaction(txn).WithTime(time.Now())
	if input != nil {
		tq = tq.WithInput(ast.NewTerm(input))
	}
	rs, err := tq.Run(ctx)
	if err != nil || len(rs) == 0 {
		return nil, err
	}
	t := rs[0][resultVar]
	if t == nil {
		return nil, nil
	}
	return t.Value, nil
}

// regoAlerts evaluates rule r's query and appends its descriptions.
func regoAlerts(ctx context.Context, q *regoQuery, r *Rule, input ast.Value, matches []Match) ([]Match, error) {
	v, err := q.eval(ctx, input)
	if err != nil {
		return matches, err
	}
	set, ok := v.(ast.Set)
	if !ok {
		return matches, nil
	}
	var bad error
	set.Foreach(func(t *ast.Term) {
		s, ok := t.Value.(ast.String)
		if !ok {
			bad = fmt.Errorf("alert produced %s %v, want a description string", ast.ValueName(t.Value), t)
			return
		}
		matches = append(matches, Match{Rule: r, Description: string(s)})
	})
	return matches, bad
}
