package rules

import (
	"fmt"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/internal/manifest"
)

// APIVersion and ExceptionsKind are those of exception documents.
const (
	APIVersion     = "vigil.dev/v1alpha1"
	ExceptionsKind = "RuleExceptions"
)

// Exceptions silence alerts of given rules for given binaries, namespaces
// and images, without editing the rules.
type Exceptions struct {
	byRule map[string][]exception // "*" applies to every rule
}

// exception matches an alert when every one of its non-empty lists has a
// value matching the event (a value ending in * is a prefix).
type exception struct {
	binaries, parentBinaries, namespaces, images []string
}

type exceptionsDoc struct {
	manifest.TypeMeta `json:",inline"`
	Metadata          struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Exceptions []struct {
			Rules          []string `json:"rules"`
			Binaries       []string `json:"binaries"`
			ParentBinaries []string `json:"parentBinaries"`
			Namespaces     []string `json:"namespaces"`
			Images         []string `json:"images"`
			Reason         string   `json:"reason"`
		} `json:"exceptions"`
	} `json:"spec"`
}

// ParseExceptions parses RuleExceptions documents (multi-document YAML).
// Every problem is reported as FILE:LINE: field: message.
func ParseExceptions(file string, data []byte) (*Exceptions, error) {
	docs, err := manifest.Split(file, data)
	errs := manifest.AsErrors(file, err)
	x := &Exceptions{byRule: map[string][]exception{}}
	for _, d := range docs {
		errs = append(errs, x.add(d)...)
	}
	if len(errs) > 0 {
		return nil, errs // nothing of a broken file applies
	}
	return x, nil
}

func (x *Exceptions) add(d *manifest.Document) manifest.Errors {
	if d.APIVersion != APIVersion || d.Kind != ExceptionsKind {
		return append(manifest.Errors{d.Errorf("kind", "%s %s is not a %s %s document", d.APIVersion, d.Kind, APIVersion, ExceptionsKind)}, manifest.AsErrors(d.File, d.Err())...)
	}
	var doc exceptionsDoc
	if err := d.Decode(&doc); err != nil {
		return manifest.AsErrors(d.File, err)
	}
	var errs manifest.Errors
	if doc.Metadata.Name == "" {
		errs = append(errs, d.Errorf("metadata.name", "required"))
	}
	for i, e := range doc.Spec.Exceptions {
		path := fmt.Sprintf("spec.exceptions[%d]", i)
		if len(e.Rules) == 0 {
			errs = append(errs, d.Errorf(path+".rules", `required: the ids of the rules it silences, or "*" for all`))
		}
		if len(e.Binaries)+len(e.ParentBinaries)+len(e.Namespaces)+len(e.Images) == 0 {
			errs = append(errs, d.Errorf(path, "silences nothing: give binaries, parentBinaries, namespaces or images"))
		}
		for field, vals := range map[string][]string{"binaries": e.Binaries, "parentBinaries": e.ParentBinaries, "namespaces": e.Namespaces, "images": e.Images} {
			for j, v := range vals {
				if v == "" || strings.Contains(strings.TrimSuffix(v, "*"), "*") {
					errs = append(errs, d.Errorf(fmt.Sprintf("%s.%s[%d]", path, field, j), "%q: want a value, or a prefix ending in a single *", v))
				}
			}
		}
		ex := exception{binaries: e.Binaries, parentBinaries: e.ParentBinaries, namespaces: e.Namespaces, images: e.Images}
		for _, r := range e.Rules {
			x.byRule[r] = append(x.byRule[r], ex)
		}
	}
	return errs
}

// merge adds the exceptions of o to x.
func (x *Exceptions) merge(o *Exceptions) {
	for r, l := range o.byRule {
		x.byRule[r] = append(x.byRule[r], l...)
	}
}

// unknownRules returns the rule ids named by exceptions that no rule has.
func (x *Exceptions) unknownRules(s *Set) []string {
	known := map[string]bool{"*": true}
	for _, r := range s.rules {
		known[r.ID] = true
	}
	var out []string
	for id := range x.byRule {
		if !known[id] {
			out = append(out, id)
		}
	}
	return out
}

// Silences reports whether an exception silences rule r's alert on the
// event input (an exported event of type t).
func (x *Exceptions) Silences(r *Rule, t event.Type, input ast.Value) bool {
	if x == nil {
		return false
	}
	l := append(x.byRule[r.ID], x.byRule["*"]...)
	if len(l) == 0 {
		return false
	}
	f := subjectOf(t, input)
	for _, e := range l {
		if matchAny(e.binaries, f.binary) && matchAny(e.parentBinaries, f.parent) &&
			matchAny(e.namespaces, f.namespace) && matchAny(e.images, f.image) {
			return true
		}
	}
	return false
}

// subject is what exceptions look at in an event.
type subject struct{ binary, parent, namespace, image string }

func subjectOf(t event.Type, input ast.Value) subject {
	at := func(path ...string) string {
		v := input
		for _, k := range append([]string{t.String()}, path...) {
			obj, ok := v.(ast.Object)
			if !ok {
				return ""
			}
			term := obj.Get(ast.StringTerm(k))
			if term == nil {
				return ""
			}
			v = term.Value
		}
		s, _ := v.(ast.String)
		return string(s)
	}
	return subject{
		binary:    at("process", "binary"),
		parent:    at("parent", "binary"),
		namespace: at("process", "pod", "namespace"),
		image:     at("process", "pod", "container", "image", "name"),
	}
}

// matchAny reports whether v matches one of pats; an empty list matches
// everything.
func matchAny(pats []string, v string) bool {
	if len(pats) == 0 {
		return true
	}
	for _, p := range pats {
		if pre, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(v, pre) {
				return true
			}
		} else if p == v {
			return true
		}
	}
	return false
}
