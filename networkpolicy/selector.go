package networkpolicy

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/api/validate/content"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"

	"github.com/vigilsec/vigil/internal/manifest"
)

// problems collects the located errors of one document.
type problems struct {
	doc  *manifest.Document
	list manifest.Errors
	// decodeErrs are the problems of the strict decode. The document is
	// then checked as DecodeLenient read it, so that every problem is
	// reported at once.
	decodeErrs manifest.Errors
}

// decode decodes the document strictly into out, and reports whether it
// succeeded; on failure the caller decodes it leniently and checks the
// rest.
func (p *problems) decode(out any) bool {
	p.decodeErrs = manifest.AsErrors(p.doc.File, p.doc.Decode(out))
	return len(p.decodeErrs) == 0
}

// err returns every problem, or nil.
func (p *problems) err() error {
	if len(p.decodeErrs) > 0 {
		return p.doc.AlsoChecked(p.decodeErrs, p.list)
	}
	return p.list.Err()
}

func (p *problems) add(path, format string, args ...any) {
	p.list = append(p.list, p.doc.Errorf(path, format, args...))
}

func (p *problems) line(path string) int { return p.doc.LineOf(path) }

// compileSelector validates a label selector and turns it into a Selector.
// For the Cilium view, keys may carry the k8s: or any: source prefix.
// It returns nil (and records a problem) when the selector is invalid.
func compileSelector(p *problems, path string, ls *metav1.LabelSelector, view LabelView, namespace string) *Selector {
	if ls == nil {
		ls = &metav1.LabelSelector{}
	}
	before := len(p.list)
	var reqs []labels.Requirement
	keys := make([]string, 0, len(ls.MatchLabels))
	for k := range ls.MatchLabels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := ls.MatchLabels[k]
		kpath := path + ".matchLabels." + k
		key, ok := selectorKey(p, kpath, k, view)
		if !ok {
			continue
		}
		if msgs := content.IsLabelValue(v); len(msgs) > 0 {
			p.add(kpath, "invalid label value %q: %s", v, strings.Join(msgs, "; "))
			continue
		}
		r, err := labels.NewRequirement(key, selection.Equals, []string{v})
		if err != nil {
			p.add(kpath, "%v", err)
			continue
		}
		reqs = append(reqs, *r)
	}
	for i, e := range ls.MatchExpressions {
		epath := fmt.Sprintf("%s.matchExpressions[%d]", path, i)
		key, ok := selectorKey(p, epath+".key", e.Key, view)
		if !ok {
			continue
		}
		var op selection.Operator
		switch e.Operator {
		case metav1.LabelSelectorOpIn:
			op = selection.In
		case metav1.LabelSelectorOpNotIn:
			op = selection.NotIn
		case metav1.LabelSelectorOpExists:
			op = selection.Exists
		case metav1.LabelSelectorOpDoesNotExist:
			op = selection.DoesNotExist
		default:
			p.add(epath+".operator", "unknown operator %q (want In, NotIn, Exists or DoesNotExist)", e.Operator)
			continue
		}
		switch op {
		case selection.In, selection.NotIn:
			if len(e.Values) == 0 {
				p.add(epath+".values", "operator %s needs at least one value", e.Operator)
				continue
			}
		default:
			if len(e.Values) > 0 {
				p.add(epath+".values", "operator %s takes no values", e.Operator)
				continue
			}
		}
		bad := false
		for j, v := range e.Values {
			if msgs := content.IsLabelValue(v); len(msgs) > 0 {
				p.add(fmt.Sprintf("%s.values[%d]", epath, j), "invalid label value %q: %s", v, strings.Join(msgs, "; "))
				bad = true
			}
		}
		if bad {
			continue
		}
		r, err := labels.NewRequirement(key, op, e.Values)
		if err != nil {
			p.add(epath, "%v", err)
			continue
		}
		reqs = append(reqs, *r)
	}
	if len(p.list) > before {
		return nil
	}
	sel := labels.NewSelector().Add(reqs...)
	return &Selector{sel: sel, View: view, Namespace: namespace, text: sel.String()}
}

// selectorKey validates a selector key and strips a Cilium source prefix.
func selectorKey(p *problems, path, key string, view LabelView) (string, bool) {
	if view == ViewCilium {
		if src, rest, ok := strings.Cut(key, ":"); ok {
			switch src {
			case "k8s", "any":
				key = rest
			case "reserved":
				p.add(path, "reserved labels are not supported in selectors (use fromEntities/toEntities)")
				return "", false
			default:
				p.add(path, "label source %q is not supported (use k8s: or no prefix)", src)
				return "", false
			}
		}
	}
	if msgs := content.IsLabelKey(key); len(msgs) > 0 {
		p.add(path, "invalid label key %q: %s", key, strings.Join(msgs, "; "))
		return "", false
	}
	return key, true
}

// selectsNamespaceLabel reports whether a Cilium selector names the
// namespace pseudo-label, which lifts the implicit restriction to the
// policy's own namespace.
func selectsNamespaceLabel(ls *metav1.LabelSelector) bool {
	if ls == nil {
		return false
	}
	strip := func(k string) string {
		if _, rest, ok := strings.Cut(k, ":"); ok {
			return rest
		}
		return k
	}
	for k := range ls.MatchLabels {
		if strip(k) == ciliumNamespaceLabel {
			return true
		}
	}
	for _, e := range ls.MatchExpressions {
		if strip(e.Key) == ciliumNamespaceLabel {
			return true
		}
	}
	return false
}
