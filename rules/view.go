package rules

import (
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/exporter/encode"
)

// The typed input: an event read as the JSON object the exporter writes
// for it (exporter/encode), without encoding it. Each JSON object is a
// node over the Go value it is written from; a member is computed when a
// rule reads it, so a rule that looks at a process's binary reads one
// string and allocates nothing. The field names and the conditions under
// which a member is present follow the encoder exactly:
// TestTypedInputIsTheExportedJSON and FuzzTypedInput compare, for
// recorded and generated events, the whole typed input with the exported
// JSON parsed.

// view is one event as a rule's input: the event and the node name the
// exporter writes.
type view struct {
	ev       *event.Event
	nodeName string
}

// root is the input document.
func (v *view) root() val { return nodeVal(objKind, (*topNode)(v)) }

// fieldIDs numbers the member names of the typed view's objects.
var fieldIDs = map[string]uint16{}

func fieldID(name string) uint16 {
	id, ok := fieldIDs[name]
	if !ok {
		id = uint16(len(fieldIDs) + 1)
		fieldIDs[name] = id
	}
	return id
}

// field is one member of a typed object: its value, undefined when the
// exporter leaves the member out.
type field[T any] struct {
	name string
	get  func(*T) val
}

// schema is the members of the objects written from a T.
type schema[T any] struct {
	fields []field[T]
	keys   []*ast.Term
	byID   []int8 // field id -> index in fields + 1
}

func newSchema[T any](fields ...field[T]) *schema[T] {
	s := &schema[T]{fields: fields}
	for i, f := range fields {
		id := fieldID(f.name)
		for int(id) >= len(s.byID) {
			s.byID = append(s.byID, 0)
		}
		s.byID[id] = int8(i + 1)
		s.keys = append(s.keys, ast.StringTerm(f.name))
	}
	return s
}

func (s *schema[T]) get(x *T, k key) val {
	if int(k.id) < len(s.byID) {
		if i := s.byID[k.id]; i > 0 {
			return s.fields[i-1].get(x)
		}
	}
	return undef
}

func (s *schema[T]) at(x *T, i int) (val, val) {
	f := &s.fields[i]
	return strVal(f.name), f.get(x)
}

// term makes the Rego object of x.
func (s *schema[T]) term(m *materializer, x *T) ast.Value {
	pairs := make([][2]*ast.Term, 0, len(s.fields))
	for i := range s.fields {
		v := s.fields[i].get(x)
		if v.defined() {
			pairs = append(pairs, [2]*ast.Term{s.keys[i], ast.NewTerm(toAST(v, m))})
		}
	}
	return ast.NewObject(pairs...)
}

// Typed values for the exported JSON's scalars.
func textVal(s string) val  { return strVal(jsonText(s)) }
func bytesVal(s string) val { return strVal(bytesText(s)) }
func u32(u uint32) val      { return intVal(int64(u)) }

// textIf is a string member the exporter writes only when not empty.
func textIf(s string) val {
	if s == "" {
		return undef
	}
	return textVal(s)
}

// uintIf is a number member written only when not zero.
func uintIf(u uint64) val {
	if u == 0 {
		return undef
	}
	return uintVal(u)
}

// trueIf is a flag member written only when set.
func trueIf(b bool) val {
	if !b {
		return undef
	}
	return trueVal
}

// signalIf is a signal's name, written only for a signal.
func signalIf(sig uint32) val {
	if sig == 0 {
		return undef
	}
	return strVal(encode.SignalName(sig))
}

// The top object: {"<type>": {...}, "node_name": ..., "time": ...}.
type topNode view

var (
	nodeNameID = fieldID("node_name")
	timeID     = fieldID("time")
	typeIDs    = func() (ids [16]uint16) {
		for _, t := range event.Types() {
			ids[t] = fieldID(t.String())
		}
		return ids
	}()
	nodeNameKey = ast.StringTerm("node_name")
	timeKey     = ast.StringTerm("time")
)

func (n *topNode) get(k key) val {
	switch k.id {
	case 0:
		return undef
	case nodeNameID:
		return textVal(n.nodeName)
	case timeID:
		return strVal(timeText(n.ev.Time))
	case typeIDs[n.ev.Type]:
		return n.body()
	}
	return undef
}

func (n *topNode) body() val {
	v := (*view)(n)
	switch n.ev.Type {
	case event.TypeProcessExec:
		return nodeVal(objKind, (*execNode)(v))
	case event.TypeProcessExit:
		return nodeVal(objKind, (*exitNode)(v))
	case event.TypeProcessKprobe, event.TypeProcessTracepoint, event.TypeProcessLSM, event.TypeProcessUprobe, event.TypeProcessUsdt:
		return nodeVal(objKind, (*kprobeNode)(v))
	case event.TypeFlow:
		return nodeVal(objKind, (*flowNode)(v))
	}
	return undef
}

func (n *topNode) size() int { return 3 }

func (n *topNode) at(i int) (val, val) {
	switch i {
	case 0:
		return strVal(n.ev.Type.String()), n.body()
	case 1:
		return strVal("node_name"), textVal(n.nodeName)
	}
	return strVal("time"), strVal(timeText(n.ev.Time))
}

func (n *topNode) term(m *materializer) ast.Value {
	pairs := make([][2]*ast.Term, 0, 3)
	if b := n.body(); b.defined() {
		pairs = append(pairs, [2]*ast.Term{ast.StringTerm(n.ev.Type.String()), ast.NewTerm(toAST(b, m))})
	}
	pairs = append(pairs,
		[2]*ast.Term{nodeNameKey, ast.StringTerm(jsonText(n.nodeName))},
		[2]*ast.Term{timeKey, ast.StringTerm(timeText(n.ev.Time))})
	return ast.NewObject(pairs...)
}

// process_exec: {"process", "parent"}.
type execNode view

var execSchema = newSchema(processField, parentField)

var (
	processField = field[view]{"process", func(v *view) val { return procVal(v.ev.Process) }}
	parentField  = field[view]{"parent", func(v *view) val { return procVal(v.ev.Parent) }}
)

func (n *execNode) get(k key) val                  { return execSchema.get((*view)(n), k) }
func (n *execNode) size() int                      { return len(execSchema.fields) }
func (n *execNode) at(i int) (val, val)            { return execSchema.at((*view)(n), i) }
func (n *execNode) term(m *materializer) ast.Value { return execSchema.term(m, (*view)(n)) }

// process_exit.
type exitNode view

var zeroExit event.Exit

func exitOf(v *view) *event.Exit {
	if v.ev.Exit == nil {
		return &zeroExit
	}
	return v.ev.Exit
}

var exitSchema = newSchema(processField, parentField,
	field[view]{"status", func(v *view) val { return u32(exitOf(v).Status) }},
	field[view]{"signal", func(v *view) val { return signalIf(exitOf(v).Signal) }},
	field[view]{"core_dumped", func(v *view) val { return trueIf(exitOf(v).CoreDumped) }},
	field[view]{"time", func(v *view) val { return strVal(timeText(v.ev.Time)) }},
)

func (n *exitNode) get(k key) val                  { return exitSchema.get((*view)(n), k) }
func (n *exitNode) size() int                      { return len(exitSchema.fields) }
func (n *exitNode) at(i int) (val, val)            { return exitSchema.at((*view)(n), i) }
func (n *exitNode) term(m *materializer) ast.Value { return exitSchema.term(m, (*view)(n)) }

// stringList is a JSON array of strings written with AppendString.
type stringList []string

func (n *stringList) get(k key) val {
	if k.isNum && k.num < len(*n) {
		return textVal((*n)[k.num])
	}
	return undef
}
func (n *stringList) size() int { return len(*n) }
func (n *stringList) at(i int) (val, val) {
	return intVal(int64(i)), textVal((*n)[i])
}
func (n *stringList) term(m *materializer) ast.Value {
	terms := make([]*ast.Term, len(*n))
	for i, s := range *n {
		terms[i] = ast.StringTerm(jsonText(s))
	}
	return ast.NewArray(terms...)
}

// listVal is a list member, absent when empty.
func listVal(l *[]string) val {
	if len(*l) == 0 {
		return undef
	}
	return nodeVal(arrKind, (*stringList)(l))
}
