package rules

import (
	"sync/atomic"
	"unsafe"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/vigilsec/vigil/event"
)

// materializer makes the Rego value of a typed input, for the rules the
// Go evaluator leaves to Rego. Process and pod values are immutable and
// shared by many events (a process's exec, its policy events and flows,
// the parent of its children), so their Rego values are kept by pointer,
// in bounded tables, and shared: Rego never modifies its input. A nil
// materializer keeps nothing. Not safe for concurrent use.
type materializer struct {
	procs [materializedProcs]struct {
		p *event.Process
		v ast.Value
	}
	pods [materializedPods]struct {
		p *event.Pod
		v ast.Value
	}
}

// Sizes of the tables, in entries (powers of 2).
const (
	materializedProcs = 1024
	materializedPods  = 256
)

// input returns the Rego value of the event v.
func (m *materializer) input(v *view) ast.Value { return (*topNode)(v).term(m) }

func slotOf(p unsafe.Pointer, n int) int {
	return int((uint64(uintptr(p)) * 0x9E3779B97F4A7C15) >> 32 & uint64(n-1))
}

func (m *materializer) process(p *event.Process) ast.Value {
	if m == nil {
		return procSchema.term(nil, p)
	}
	s := &m.procs[slotOf(unsafe.Pointer(p), materializedProcs)]
	if s.p != p {
		s.p, s.v = p, procSchema.term(m, p)
	}
	return s.v
}

func (m *materializer) pod(p *event.Pod) ast.Value {
	if m == nil {
		return podSchema.term(nil, p)
	}
	s := &m.pods[slotOf(unsafe.Pointer(p), materializedPods)]
	if s.p != p {
		s.p, s.v = p, podSchema.term(m, p)
	}
	return s.v
}

// capLists holds the Rego arrays of recent capability masks: a node has a
// handful (root's, a runtime's default set, none).
var capLists [64]atomic.Pointer[capListEntry]

type capListEntry struct {
	mask uint64
	v    *ast.Array
}

func capListTerm(mask uint64) ast.Value {
	slot := &capLists[(mask*0x9E3779B97F4A7C15)>>58]
	if e := slot.Load(); e != nil && e.mask == mask {
		return e.v
	}
	n := capList(mask)
	terms := make([]*ast.Term, n.size())
	for i := range terms {
		_, v := n.at(i)
		if v.k == numKind {
			terms[i] = ast.IntNumberTerm(int(v.i))
		} else {
			terms[i] = ast.StringTerm(v.s)
		}
	}
	arr := ast.NewArray(terms...)
	slot.Store(&capListEntry{mask: mask, v: arr})
	return arr
}
