package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	sigsjson "sigs.k8s.io/json"
)

// Error is one problem in a manifest, located by file, line and field path.
type Error struct {
	File string
	Line int
	// Path is the field path, such as spec.kprobes[0].call; empty for
	// problems of the whole document.
	Path string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is a list of problems, reported one per line.
type Errors []*Error

func (l Errors) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Sort orders the problems by file, then line, keeping the order of those
// on the same line.
func (l Errors) Sort() {
	sort.SliceStable(l, func(i, j int) bool {
		if l[i].File != l[j].File {
			return l[i].File < l[j].File
		}
		return l[i].Line < l[j].Line
	})
}

// Err returns nil for an empty list and the list otherwise.
func (l Errors) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

// AsErrors flattens err into a list of located problems. Errors that carry no
// location are returned with the given file name only.
func AsErrors(file string, err error) Errors {
	if err == nil {
		return nil
	}
	var list Errors
	if errors.As(err, &list) {
		return list
	}
	var one *Error
	if errors.As(err, &one) {
		return Errors{one}
	}
	return Errors{{File: file, Msg: err.Error()}}
}

// TypeMeta is the apiVersion and kind of a document.
type TypeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// Document is one YAML or JSON document of a file, or one item of a List
// document.
type Document struct {
	File string
	// Index is the position of the document in its file, from 0; the
	// items of a List count one each.
	Index int
	// Line is the line the document (or the List item) starts on.
	Line int
	TypeMeta
	// Name is metadata.name, when present.
	Name string
	// Prefix is the field path of a List item within its document, such
	// as items[3]; empty for a document of its own. Every problem of the
	// item is reported under it.
	Prefix string

	raw  []byte
	root *yamlv3.Node
	// problems are those found while splitting (duplicate keys): a
	// document that has any never decodes.
	problems Errors
}

// Raw returns the document's YAML text.
func (d *Document) Raw() []byte { return d.raw }

// Err returns the problems found in the document itself while the file was
// read (duplicate keys), or nil. Decode returns them too; a caller that
// refuses a document without decoding it (an unknown kind) adds them, so
// that every problem is reported at once.
func (d *Document) Err() error { return d.problems.Err() }

// Split parses data as a stream of YAML (or JSON) documents; see the
// package documentation for what it refuses. It returns every document it
// could read, each with the problems found in it (see Document.Err), and an
// error listing the problems of the file as a whole (syntax, empty or
// binary content). Empty documents are skipped; List documents are expanded
// into their items.
func Split(file string, data []byte) ([]*Document, error) {
	if err := checkText(file, data); err != nil {
		return nil, err
	}
	dec := yamlv3.NewDecoder(bytes.NewReader(data))
	var docs []*Document
	var errs Errors
	for {
		var n yamlv3.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			errs = append(errs, syntaxError(file, err))
			break
		}
		if len(n.Content) == 0 || isNull(n.Content[0]) {
			continue
		}
		root := n.Content[0]
		if root.Kind != yamlv3.MappingNode {
			errs = append(errs, &Error{File: file, Line: root.Line, Msg: "a document must be a mapping with apiVersion and kind, got " + describe(root)})
			continue
		}
		problems := duplicateKeys(file, root, "")
		if isList(root) {
			items, listErrs := expandList(file, root, len(docs))
			for _, it := range items {
				it.problems = append(problemsUnder(problems, it.Prefix), it.problems...)
			}
			docs = append(docs, items...)
			// Problems of the List itself (not of an item) are the file's.
			errs = append(errs, listErrs...)
			errs = append(errs, problemsOutsideItems(problems)...)
			continue
		}
		d, derr := newDocument(file, root, len(docs), "")
		if derr != nil {
			errs = append(errs, derr)
			continue
		}
		d.problems = problems
		docs = append(docs, d)
	}
	return docs, errs.Err()
}

func newDocument(file string, root *yamlv3.Node, index int, prefix string) (*Document, *Error) {
	raw, err := yamlv3.Marshal(root)
	if err != nil {
		return nil, &Error{File: file, Line: root.Line, Path: prefix, Msg: err.Error()}
	}
	d := &Document{File: file, Index: index, Line: root.Line, Prefix: prefix, raw: raw, root: root}
	d.APIVersion = scalarAt(root, "apiVersion")
	d.Kind = scalarAt(root, "kind")
	if md := child(root, "metadata"); md != nil {
		d.Name = scalarAt(md, "name")
	}
	return d, nil
}

func syntaxError(file string, err error) *Error {
	msg := err.Error()
	line := 0
	// go.yaml.in/yaml/v3 reports "yaml: line N: message".
	if rest, ok := strings.CutPrefix(msg, "yaml: line "); ok {
		if n, tail, ok := strings.Cut(rest, ":"); ok {
			fmt.Sscanf(n, "%d", &line)
			msg = strings.TrimSpace(tail)
		}
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	if line == 0 {
		line = 1
	}
	return &Error{File: file, Line: line, Msg: "invalid YAML: " + msg}
}

func isNull(n *yamlv3.Node) bool {
	return n.Kind == yamlv3.ScalarNode && n.Tag == "!!null"
}

func child(m *yamlv3.Node, key string) *yamlv3.Node {
	if m == nil || m.Kind != yamlv3.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func scalarAt(m *yamlv3.Node, key string) string {
	if c := child(m, key); c != nil && c.Kind == yamlv3.ScalarNode {
		return c.Value
	}
	return ""
}

// Errorf returns a problem located at path in this document.
func (d *Document) Errorf(path, format string, args ...any) *Error {
	return &Error{File: d.File, Line: d.LineOf(path), Path: d.FullPath(path), Msg: fmt.Sprintf(format, args...)}
}

// FullPath returns path as problems of the document name it: under its
// prefix for the item of a List (items[3].spec...).
func (d *Document) FullPath(path string) string {
	if d.Prefix == "" {
		return path
	}
	if path == "" {
		return d.Prefix
	}
	return d.Prefix + "." + path
}

// LineOf returns the line of the field at path, or of its nearest ancestor
// present in the document.
func (d *Document) LineOf(path string) int {
	n := d.root
	line := d.Line
	for _, step := range parsePath(path) {
		var next *yamlv3.Node
		if step.index >= 0 {
			if n.Kind == yamlv3.SequenceNode && step.index < len(n.Content) {
				next = n.Content[step.index]
			}
		} else if n.Kind == yamlv3.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == step.key {
					line = n.Content[i].Line
					next = n.Content[i+1]
					break
				}
			}
		}
		if next == nil {
			return line
		}
		n = next
		if step.index >= 0 {
			line = n.Line
		}
	}
	return line
}

type pathStep struct {
	key   string
	index int
}

// parsePath splits "a.b[2].c" into steps.
func parsePath(path string) []pathStep {
	var out []pathStep
	for _, part := range strings.Split(path, ".") {
		if part == "" {
			continue
		}
		key := part
		var idx []int
		if i := strings.IndexByte(part, '['); i >= 0 {
			key = part[:i]
			rest := part[i:]
			for strings.HasPrefix(rest, "[") {
				j := strings.IndexByte(rest, ']')
				if j < 0 {
					break
				}
				var n int
				if _, err := fmt.Sscanf(rest[1:j], "%d", &n); err == nil {
					idx = append(idx, n)
				}
				rest = rest[j+1:]
			}
		}
		if key != "" {
			out = append(out, pathStep{key: key, index: -1})
		}
		for _, n := range idx {
			out = append(out, pathStep{index: n})
		}
	}
	return out
}

// Decode decodes the document into out, a pointer to a struct with json
// tags. Duplicate keys, unknown fields, values of the wrong shape and plain
// scalars that YAML 1.1 readers take differently are reported with their
// line and path; all of them, not just the first. Read-only fields that
// the API server sets (status, metadata.uid, metadata.managedFields, ...)
// are accepted where out has no place for them.
func (d *Document) Decode(out any) error {
	js, errs := d.convert(out, false)
	errs = append(append(Errors{}, d.problems...), errs...)
	if len(errs) > 0 {
		errs.Sort()
		return errs
	}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(js, out); err != nil {
		return Errors{{File: d.File, Line: d.Line, Path: d.Prefix, Msg: cleanDecodeError(err)}}
	}
	return nil
}

// DecodeLenient decodes what fits into out and leaves out the rest, without
// reporting anything. It is for checking the rest of a document that Decode
// refused, so that every problem can be reported at once; never use its
// result.
func (d *Document) DecodeLenient(out any) error {
	js, _ := d.convert(out, true)
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(js, out); err != nil {
		return Errors{{File: d.File, Line: d.Line, Path: d.Prefix, Msg: cleanDecodeError(err)}}
	}
	return nil
}

func cleanDecodeError(err error) string {
	msg := err.Error()
	for _, p := range []string{"error unmarshaling JSON: ", "while decoding JSON: ", "json: "} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	return msg
}

// AlsoChecked returns decodeErrs, the problems Decode found, followed by
// those of more (found by checking what DecodeLenient made of the same
// document) that are not about the same fields: problems inside an object
// with an unknown field, at or below a duplicate key, or at a value that
// did not decode, are most likely the same mistake (a misspelt "operator"
// leaves the operator missing) and are left out. With it a command reports every
// problem of a document at once.
func (d *Document) AlsoChecked(decodeErrs, more Errors) Errors {
	var broken []string
	for _, e := range decodeErrs {
		path := e.Path
		if strings.Contains(e.Msg, "unknown field") {
			if i := strings.LastIndexAny(path, ".["); i >= 0 && path[i] == '.' {
				path = path[:i]
			} else if i >= 0 {
				path = path[:i]
			} else {
				path = ""
			}
		}
		if path == "" || path == d.Prefix {
			return decodeErrs // the whole document is in doubt
		}
		broken = append(broken, path)
	}
	errs := append(Errors{}, decodeErrs...)
next:
	for _, e := range more {
		for _, b := range broken {
			if under(e.Path, b) {
				continue next
			}
		}
		errs = append(errs, e)
	}
	errs.Sort()
	return errs
}
