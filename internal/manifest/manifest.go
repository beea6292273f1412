// Package manifest reads multi-document YAML files (policies, workloads,
// Kubernetes manifests) and decodes them strictly into Go types while keeping
// source positions, so that every problem can be reported as
//
//	FILE:LINE: field.path[0].name: what is wrong
//
// Unknown fields and values of the wrong shape are errors, never ignored.
package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"
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

// Document is one YAML document of a file.
type Document struct {
	File string
	// Index is the position of the document in its file, from 0.
	Index int
	// Line is the line the document starts on.
	Line int
	TypeMeta
	// Name is metadata.name, when present.
	Name string

	raw  []byte
	root *yamlv3.Node
}

// Raw returns the document's YAML text.
func (d *Document) Raw() []byte { return d.raw }

// ReadPath reads a file, or every *.yaml and *.yml file below a directory in
// lexical order.
func ReadPath(path string) ([]*Document, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return ReadFile(path)
	}
	files, err := YAMLFiles(path)
	if err != nil {
		return nil, err
	}
	var docs []*Document
	var errs Errors
	for _, f := range files {
		d, err := ReadFile(f)
		if err != nil {
			errs = append(errs, AsErrors(f, err)...)
			continue
		}
		docs = append(docs, d...)
	}
	return docs, errs.Err()
}

// YAMLFiles lists the *.yaml and *.yml files below dir, sorted.
func YAMLFiles(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != dir && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if IsYAMLFile(p) {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	return files, err
}

// IsYAMLFile reports whether the name ends in .yaml or .yml and is not hidden.
func IsYAMLFile(name string) bool {
	base := filepath.Base(name)
	if strings.HasPrefix(base, ".") {
		return false
	}
	ext := strings.ToLower(filepath.Ext(base))
	return ext == ".yaml" || ext == ".yml"
}

// ReadFile reads and splits one file.
func ReadFile(path string) ([]*Document, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Split(path, data)
}

// Split parses data as a stream of YAML documents. Empty documents are
// skipped. A syntax error is reported with its line.
func Split(file string, data []byte) ([]*Document, error) {
	dec := yamlv3.NewDecoder(bytes.NewReader(data))
	var docs []*Document
	for i := 0; ; i++ {
		var n yamlv3.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, syntaxError(file, err)
		}
		if len(n.Content) == 0 || isNull(n.Content[0]) {
			continue
		}
		root := n.Content[0]
		if root.Kind != yamlv3.MappingNode {
			return nil, Errors{{File: file, Line: root.Line, Msg: "a document must be a mapping with apiVersion and kind"}}
		}
		raw, err := yamlv3.Marshal(root)
		if err != nil {
			return nil, Errors{{File: file, Line: root.Line, Msg: err.Error()}}
		}
		d := &Document{File: file, Index: len(docs), Line: root.Line, raw: raw, root: root}
		d.APIVersion = scalarAt(root, "apiVersion")
		d.Kind = scalarAt(root, "kind")
		if md := child(root, "metadata"); md != nil {
			d.Name = scalarAt(md, "name")
		}
		docs = append(docs, d)
	}
	return docs, nil
}

func syntaxError(file string, err error) error {
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
	return Errors{{File: file, Line: line, Msg: "invalid YAML: " + msg}}
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
	return &Error{File: d.File, Line: d.LineOf(path), Path: path, Msg: fmt.Sprintf(format, args...)}
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
// tags. Unknown fields and values of the wrong shape are reported with their
// line and path; all of them are reported, not just the first.
func (d *Document) Decode(out any) error {
	errs := d.check(out)
	if len(errs) > 0 {
		return errs
	}
	if err := yaml.Unmarshal(d.raw, out); err != nil {
		return Errors{{File: d.File, Line: d.Line, Msg: cleanDecodeError(err)}}
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
