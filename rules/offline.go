package rules

import (
	"bytes"
	"context"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/vigilsec/vigil/event"
)

// Offline evaluates recorded events, exported JSON lines, as the agent
// evaluates live ones: for `vigil rules test` and CI. A line is parsed
// into the Rego value of the object, which the same plans and queries
// read as the agent's typed input of the event it was exported from (the
// typed input is that object: TestTypedInputIsTheExportedJSON). Not safe
// for concurrent use.
type Offline struct {
	set    *Set
	exc    *Exceptions
	parser *inputParser
}

// NewOffline evaluates set, with the exceptions exc (nil: none).
func NewOffline(set *Set, exc *Exceptions) *Offline {
	return &Offline{set: set, exc: exc, parser: newInputParser(4096)}
}

// Result is what one recorded event raised.
type Result struct {
	// Alerts carry the recorded event in Alert.Raw and its time.
	Alerts []*event.Event
	// NodeName is the event's node_name.
	NodeName string
	// Silenced counts alerts an exception silenced.
	Silenced int
	Errors   []RuleError
}

// Eval evaluates one line. Lines of events no rule can consume (alerts,
// lost_events, ...) give an empty result; a line that is not a JSON object
// is an error.
func (o *Offline) Eval(ctx context.Context, line []byte) (Result, error) {
	line = bytes.TrimSpace(line)
	input, t, err := o.parser.parse(line)
	if err != nil {
		return Result{}, err
	}
	var res Result
	obj := input.(ast.Object)
	if s, ok := stringAt(obj, "node_name"); ok {
		res.NodeName = s
	}
	if t == event.TypeUnknown {
		return res, nil
	}
	at := time.Time{}
	if s, ok := stringAt(obj, "time"); ok {
		at, _ = time.Parse(time.RFC3339Nano, s)
	}
	matches, errs := o.set.Eval(ctx, t, input)
	res.Errors = errs
	subject := SubjectOf(t, input)
	for _, m := range matches {
		if o.exc.Silences(m.Rule, subject) {
			res.Silenced++
			continue
		}
		ev := AlertEvent(m, &event.Event{Type: t}, at)
		ev.Alert.Event, ev.Alert.Raw = nil, bytes.Clone(line)
		res.Alerts = append(res.Alerts, ev)
	}
	return res, nil
}

func stringAt(obj ast.Object, key string) (string, bool) {
	term := obj.Get(ast.StringTerm(key))
	if term == nil {
		return "", false
	}
	s, ok := term.Value.(ast.String)
	return string(s), ok
}
