package networkpolicy

import (
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// labelViews are the label sets of an identity, indexed by LabelView.
func labelViews(ident *Identity) [2]labels.Set {
	return [2]labels.Set{ViewPod: ident.Labels, ViewCilium: ident.ciliumLabels}
}

// indexKey returns the first requirement of a selector that names values
// (key=value, key in (...)): only identities carrying one of its labels
// can match. ok is false when the selector has none.
func indexKey(sel labels.Selector) (key string, values []string, ok bool) {
	if sel == nil {
		return "", nil, false
	}
	reqs, _ := sel.Requirements()
	for _, r := range reqs {
		switch r.Operator() {
		case selection.Equals, selection.DoubleEquals, selection.In:
			return r.Key(), r.ValuesUnsorted(), true
		}
	}
	return "", nil, false
}

// identityIndex finds the identities a selector may select without trying
// every one: pod identities by label (per label view), and the others. The
// compiler keeps it current as identities come and go.
type identityIndex struct {
	all     map[uint32]struct{}
	pods    map[uint32]struct{}
	byLabel [2]map[string]map[uint32]struct{} // LabelView -> "key=value" -> identities
}

func newIdentityIndex() *identityIndex {
	return &identityIndex{all: map[uint32]struct{}{}, pods: map[uint32]struct{}{},
		byLabel: [2]map[string]map[uint32]struct{}{{}, {}}}
}

func (x *identityIndex) add(ident *Identity) {
	x.all[ident.ID] = struct{}{}
	if ident.Kind != KindPod {
		return
	}
	x.pods[ident.ID] = struct{}{}
	for view, set := range labelViews(ident) {
		for k, v := range set {
			m := x.byLabel[view][k+"="+v]
			if m == nil {
				m = map[uint32]struct{}{}
				x.byLabel[view][k+"="+v] = m
			}
			m[ident.ID] = struct{}{}
		}
	}
}

func (x *identityIndex) remove(ident *Identity) {
	delete(x.all, ident.ID)
	if ident.Kind != KindPod {
		return
	}
	delete(x.pods, ident.ID)
	for view, set := range labelViews(ident) {
		for k, v := range set {
			if m := x.byLabel[view][k+"="+v]; m != nil {
				delete(m, ident.ID)
				if len(m) == 0 {
					delete(x.byLabel[view], k+"="+v)
				}
			}
		}
	}
}

// podCandidates calls fn with a superset of the pod identities sel selects.
func (x *identityIndex) podCandidates(sel *Selector, fn func(uint32)) {
	if sel == nil || sel.sel == nil {
		return
	}
	if key, values, ok := indexKey(sel.sel); ok {
		for _, v := range values {
			for id := range x.byLabel[sel.View][key+"="+v] {
				fn(id)
			}
		}
		return
	}
	for id := range x.pods {
		fn(id)
	}
}

// candidates calls fn with a superset of the identities a peer selects.
func (x *identityIndex) candidates(p *Peer, fn func(uint32)) {
	if p.Kind == PeerPods {
		x.podCandidates(p.Pods, fn)
		return
	}
	for id := range x.all {
		fn(id)
	}
}

// reverseIndex finds the selectors (of rules' peers, of sections'
// subjects) that may select a new pod identity without trying every one:
// by a label their selector requires, by the one namespace they are
// restricted to, and the rest.
type reverseIndex[T comparable] struct {
	byLabel [2]map[string]map[T]struct{}
	byNS    map[string]map[T]struct{}
	rest    map[T]struct{}
}

func newReverseIndex[T comparable]() *reverseIndex[T] {
	return &reverseIndex[T]{byLabel: [2]map[string]map[T]struct{}{{}, {}}, byNS: map[string]map[T]struct{}{}, rest: map[T]struct{}{}}
}

func setAdd[K, T comparable](m map[K]map[T]struct{}, k K, t T) {
	s := m[k]
	if s == nil {
		s = map[T]struct{}{}
		m[k] = s
	}
	s[t] = struct{}{}
}

func setRemove[K, T comparable](m map[K]map[T]struct{}, k K, t T) {
	if s := m[k]; s != nil {
		delete(s, t)
		if len(s) == 0 {
			delete(m, k)
		}
	}
}

// addSelector indexes t under the pod selector sel restricted to namespace
// ns ("" for none); a nil selector selects nothing and is not indexed.
func (x *reverseIndex[T]) addSelector(t T, sel *Selector, ns string, remove bool) {
	if sel == nil || sel.sel == nil {
		return
	}
	op := setAdd[string, T]
	if remove {
		op = setRemove[string, T]
	}
	switch key, values, ok := indexKey(sel.sel); {
	case ok:
		for _, v := range values {
			op(x.byLabel[sel.View], key+"="+v, t)
		}
	case ns != "":
		op(x.byNS, ns, t)
	default:
		if remove {
			delete(x.rest, t)
		} else {
			x.rest[t] = struct{}{}
		}
	}
}

// addRest indexes t as a selector that may select any pod identity.
func (x *reverseIndex[T]) addRest(t T, remove bool) {
	if remove {
		delete(x.rest, t)
	} else {
		x.rest[t] = struct{}{}
	}
}

// candidates calls fn with every indexed value that may select ident (a
// value indexed under several labels may come more than once).
func (x *reverseIndex[T]) candidates(ident *Identity, fn func(T)) {
	for view, set := range labelViews(ident) {
		for k, v := range set {
			for t := range x.byLabel[view][k+"="+v] {
				fn(t)
			}
		}
	}
	for t := range x.byNS[ident.Namespace] {
		fn(t)
	}
	for t := range x.rest {
		fn(t)
	}
}
