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

// Silences reports whether an exception silences rule r's alert on an
// event with subject s.
func (x *Exceptions) Silences(r *Rule, s Subject) bool {
	if x == nil {
		return false
	}
	for _, l := range [2][]exception{x.byRule[r.ID], x.byRule["*"]} {
		for _, e := range l {
			if matchAny(e.binaries, s.Binary) && matchAny(e.parentBinaries, s.Parent) &&
				matchAny(e.namespaces, s.Namespace) && matchAny(e.images, s.Image) {
				return true
			}
		}
	}
	return false
}

// Subject is what exceptions look at in an event.
type Subject struct{ Binary, Parent, Namespace, Image string }

// SubjectOf reads the subject of input, an exported event of type t as a
// Rego value.
func SubjectOf(t event.Type, input ast.Value) Subject { return subjectOf(t, fromAST(input)) }

var (
	processKey, parentKey, binaryKey = nameKey("process"), nameKey("parent"), nameKey("binary")
	podKey, namespaceKey             = nameKey("pod"), nameKey("namespace")
	containerKey, imageKey, nameK    = nameKey("container"), nameKey("image"), nameKey("name")
)

func subjectOf(t event.Type, root val) Subject {
	body := walk(root, nameKey(t.String()))
	str := func(v val) string {
		if v.k != strKind {
			return ""
		}
		return v.s
	}
	return Subject{
		Binary:    str(walk(body, processKey, binaryKey)),
		Parent:    str(walk(body, parentKey, binaryKey)),
		Namespace: str(walk(body, processKey, podKey, namespaceKey)),
		Image:     str(walk(body, processKey, podKey, containerKey, imageKey, nameK)),
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
