package manifest

import (
	"fmt"

	yamlv3 "go.yaml.in/yaml/v3"
)

// Value is one plain value of a flat mapping (a config file), as written.
type Value struct {
	Text string
	Line int
	// Bool is set for true or false (YAML 1.2 booleans).
	Bool bool
	// YAML11Bool is set for a plain value that YAML 1.1 reads as a
	// boolean although YAML 1.2 does not (yes, no, on, off, y, n).
	YAML11Bool bool
}

// Entry is one key of a flat mapping with its value or list of values.
type Entry struct {
	Key    string
	Line   int
	List   bool
	Values []Value
}

// Flat returns the entries of a document that maps keys to plain values
// or lists of plain values, such as the agent's config file. Values of
// another shape are problems, located like every other.
func (d *Document) Flat() ([]Entry, Errors) {
	var out []Entry
	errs := append(Errors{}, d.problems...)
	for i := 0; i+1 < len(d.root.Content); i += 2 {
		k, v := d.root.Content[i], d.root.Content[i+1]
		if k.Kind != yamlv3.ScalarNode {
			errs = append(errs, &Error{File: d.File, Line: k.Line, Msg: "a key must be a plain value, got " + describe(k)})
			continue
		}
		e := Entry{Key: k.Value, Line: k.Line}
		var items []*yamlv3.Node
		switch v.Kind {
		case yamlv3.ScalarNode:
			items = []*yamlv3.Node{v}
		case yamlv3.SequenceNode:
			e.List, items = true, v.Content
		default:
			errs = append(errs, &Error{File: d.File, Line: v.Line, Path: k.Value, Msg: "expected a value or a list of values, got " + describe(v)})
			continue
		}
		ok := true
		for j, it := range items {
			if it.Kind != yamlv3.ScalarNode || isNull(it) {
				errs = append(errs, &Error{File: d.File, Line: it.Line, Path: fmt.Sprintf("%s[%d]", k.Value, j), Msg: "list items must be plain values, got " + describe(it)})
				ok = false
				continue
			}
			val := Value{Text: it.Value, Line: it.Line, Bool: it.Tag == "!!bool"}
			if plain(it) && !val.Bool {
				kind, _ := yaml11(it.Value)
				val.YAML11Bool = kind == "bool"
			}
			e.Values = append(e.Values, val)
		}
		if ok {
			out = append(out, e)
		}
	}
	return out, errs
}
