package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/vigilsec/vigil/event"
)

// PackagePrefix is the package every rule module lives under, and
// LibraryPrefix that of library modules: definitions rules import, with no
// metadata and no alert.
const (
	PackagePrefix = "vigil.rules."
	LibraryPrefix = "vigil.lib."
)

// Severities, lowest first.
var Severities = []string{"info", "low", "medium", "high", "critical"}

// Rule is one compiled detection rule.
type Rule struct {
	ID          string
	Name        string
	Description string
	Severity    string
	Tactic      string
	Technique   string
	Tags        []string
	// Events are the event types the rule consumes.
	Events []event.Type
	// File is where the rule came from ("embedded:NAME.rego" for the
	// default rules), Package its Rego package (data.vigil.rules.NAME).
	File    string
	Package string

	module *ast.Module
	source string
	lib    bool
}

// Error is a problem in a rule file, at a line when one is known.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Errors lists every problem found, one per line.
type Errors []*Error

func (l Errors) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Err returns l as an error, nil when empty.
func (l Errors) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

// metadata is the shape of a rule's metadata object.
type metadata struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Severity    string   `json:"severity"`
	Mitre       *mitre   `json:"mitre"`
	Tags        []string `json:"tags"`
	Events      []string `json:"events"`
}

type mitre struct {
	Tactic    string `json:"tactic"`
	Technique string `json:"technique"`
}

var (
	idPattern      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	packagePattern = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
)

// ParseRule parses one rule module: its syntax, package and metadata. The
// module is compiled with the rest of its set by Compile. A library module
// (package vigil.lib.NAME) needs neither metadata nor alert.
func ParseRule(file, src string) (*Rule, error) {
	mod, err := ast.ParseModuleWithOpts(file, src, ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: false})
	if err != nil {
		return nil, fromOPA(file, err)
	}
	r := &Rule{File: file, module: mod, source: src}
	pkg := strings.TrimPrefix(mod.Package.Path.String(), "data.")
	line := rowOf(mod.Package.Location)
	r.Package = "data." + pkg
	if name, ok := strings.CutPrefix(pkg, LibraryPrefix); ok && packagePattern.MatchString(name) {
		r.lib, r.ID = true, pkg
		return r, nil
	}
	name, ok := strings.CutPrefix(pkg, PackagePrefix)
	if !ok || !packagePattern.MatchString(name) {
		return nil, &Error{file, line, fmt.Sprintf("package %s: a rule's package is %sNAME, a library's %sNAME (NAME: lower case letters, digits and _)", pkg, PackagePrefix, LibraryPrefix)}
	}

	var meta, alert *ast.Rule
	for _, rule := range mod.Rules {
		switch rule.Head.Name.String() {
		case "metadata":
			if meta != nil {
				return nil, &Error{file, rowOf(rule.Location), "metadata is defined twice"}
			}
			meta = rule
		case "alert":
			alert = rule
		}
	}
	if meta == nil {
		return nil, &Error{file, line, `no metadata: define metadata := {"id": ..., "name": ..., "description": ..., "severity": ..., "mitre": {"tactic": ..., "technique": ...}, "events": [...]}`}
	}
	if alert == nil {
		return nil, &Error{file, line, `no alert rule: define alert contains description if { ... }`}
	}
	if alert.Head.RuleKind() != ast.MultiValue {
		return nil, &Error{file, rowOf(alert.Location), "alert must be a partial set rule: alert contains description if { ... }"}
	}
	if err := r.setMetadata(meta); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Rule) setMetadata(rule *ast.Rule) error {
	line := rowOf(rule.Location)
	bad := func(format string, args ...any) error {
		return &Error{r.File, line, "metadata: " + fmt.Sprintf(format, args...)}
	}
	if !unconditional(rule) || rule.Head.Value == nil || !ast.IsConstant(rule.Head.Value.Value) {
		return bad("must be a constant object (metadata := {...}), not computed")
	}
	raw, err := ast.JSON(rule.Head.Value.Value)
	if err != nil {
		return bad("%v", err)
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return bad("%v", err)
	}
	var m metadata
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return bad("%s (fields: id, name, description, severity, mitre {tactic, technique}, tags, events)", strings.TrimPrefix(err.Error(), "json: "))
	}
	switch {
	case !idPattern.MatchString(m.ID):
		return bad("id %q: want letters, digits, '.', '_' or '-' (at most 64), such as VGL-EXEC-001", m.ID)
	case strings.TrimSpace(m.Name) == "":
		return bad("name is required")
	case strings.TrimSpace(m.Description) == "":
		return bad("description is required")
	case !slices.Contains(Severities, m.Severity):
		return bad("severity %q: want one of %s", m.Severity, strings.Join(Severities, ", "))
	case m.Mitre == nil || strings.TrimSpace(m.Mitre.Tactic) == "" || strings.TrimSpace(m.Mitre.Technique) == "":
		return bad(`mitre: want {"tactic": "TA0002 Execution", "technique": "T1059.004 Unix Shell"}`)
	case len(m.Events) == 0:
		return bad("events: list the event types the rule consumes (%s)", consumableTypes())
	}
	for _, s := range m.Events {
		t, ok := event.ParseType(s)
		if !ok || !consumable(t) {
			return bad("events: %q is not an event type a rule can consume (%s)", s, consumableTypes())
		}
		if !slices.Contains(r.Events, t) {
			r.Events = append(r.Events, t)
		}
	}
	r.ID, r.Name, r.Description, r.Severity = m.ID, m.Name, m.Description, m.Severity
	r.Tactic, r.Technique, r.Tags = m.Mitre.Tactic, m.Mitre.Technique, m.Tags
	return nil
}

// unconditional says whether rule has no body (its body is "true").
func unconditional(rule *ast.Rule) bool {
	if len(rule.Body) != 1 {
		return false
	}
	t, ok := rule.Body[0].Terms.(*ast.Term)
	return ok && t.Value.Compare(ast.Boolean(true)) == 0
}

// consumable says whether rules may consume events of type t: not alerts
// (a rule over alerts could feed itself) nor the stream's accounting.
func consumable(t event.Type) bool {
	switch t {
	case event.TypeAlert, event.TypeLostEvents, event.TypeRateLimitInfo, event.TypeUnknown:
		return false
	}
	return true
}

func consumableTypes() string {
	var s []string
	for _, t := range event.Types() {
		if consumable(t) {
			s = append(s, t.String())
		}
	}
	return strings.Join(s, ", ")
}

func rowOf(l *ast.Location) int {
	if l == nil {
		return 0
	}
	return l.Row
}

// fromOPA converts OPA's parse and compile errors into Errors with file
// and line.
func fromOPA(file string, err error) error {
	var astErrs ast.Errors
	if e, ok := err.(ast.Errors); ok {
		astErrs = e
	} else if e, ok := err.(*ast.Error); ok {
		astErrs = ast.Errors{e}
	}
	if len(astErrs) == 0 {
		return &Error{File: file, Msg: err.Error()}
	}
	var out Errors
	for _, e := range astErrs {
		f, line := file, 0
		if e.Location != nil {
			if e.Location.File != "" {
				f = e.Location.File
			}
			line = e.Location.Row
		}
		out = append(out, &Error{File: f, Line: line, Msg: e.Message})
	}
	return out
}
