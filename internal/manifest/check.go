package manifest

import (
	"encoding"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	yamlv3 "go.yaml.in/yaml/v3"
)

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// maxValues bounds the values a document may expand to through aliases, so
// that a few lines of anchors cannot expand into gigabytes.
const maxValues = 1 << 20

// convert walks the YAML tree alongside the Go type of out, reports every
// unknown field and every value that does not fit its field, and returns
// the document as JSON for the Go type: YAML 1.2 values, with strings kept
// exactly as written. In lenient mode it reports nothing and leaves out
// what does not fit.
func (d *Document) convert(out any, lenient bool) ([]byte, Errors) {
	t := reflect.TypeOf(out)
	if t == nil || t.Kind() != reflect.Pointer {
		return nil, Errors{{File: d.File, Line: d.Line, Msg: "internal error: Decode needs a pointer"}}
	}
	c := &checker{doc: d, lenient: lenient, expanding: map[*yamlv3.Node]bool{}}
	c.walk(d.root, t.Elem(), "", false)
	return c.out, c.errs
}

type checker struct {
	doc       *Document
	lenient   bool
	errs      Errors
	out       []byte
	values    int
	expanding map[*yamlv3.Node]bool // anchors whose alias is being expanded
	tooMany   bool
}

// maxProblems bounds the problems reported for one document.
const maxProblems = 1000

func (c *checker) fail(n *yamlv3.Node, path, format string, args ...any) {
	if c.lenient || len(c.errs) > maxProblems {
		return
	}
	if len(c.errs) == maxProblems {
		c.errs = append(c.errs, &Error{File: c.doc.File, Line: n.Line, Path: c.doc.FullPath(path), Msg: "too many problems; the rest are not reported"})
		return
	}
	c.errs = append(c.errs, &Error{File: c.doc.File, Line: n.Line, Path: c.doc.FullPath(path), Msg: fmt.Sprintf(format, args...)})
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// readOnly are fields that the API server sets and `kubectl get -o yaml`
// prints. They are accepted, and left out, where a type does not have them.
var readOnly = map[string]bool{
	"status":                     true,
	"metadata.managedFields":     true,
	"metadata.resourceVersion":   true,
	"metadata.uid":               true,
	"metadata.creationTimestamp": true,
	"metadata.generation":        true,
	"metadata.selfLink":          true,
	"metadata.annotations":       true, // checked as a map of strings
}

// strictStringFields are the maps whose keys and values the API server
// accepts only as strings.
var strictStringMaps = map[string]bool{"labels": true, "annotations": true, "matchLabels": true}

func lastSegment(path string) string {
	if i := strings.LastIndexAny(path, ".]"); i >= 0 {
		return path[i+1:]
	}
	return path
}

// walk checks n against t and appends its JSON. strict marks a string
// position where only strings are accepted (names, labels, annotations).
func (c *checker) walk(n *yamlv3.Node, t reflect.Type, path string, strict bool) {
	if c.values++; c.values > maxValues {
		if !c.tooMany {
			c.tooMany = true
			c.fail(n, path, "the document expands to more than %d values (aliases of aliases?)", maxValues)
		}
		c.out = append(c.out, "null"...)
		return
	}
	if n.Kind == yamlv3.AliasNode {
		target := n.Alias
		if target == nil || c.expanding[target] {
			c.fail(n, path, "alias *%s refers to a value that contains it", n.Value)
			c.out = append(c.out, "null"...)
			return
		}
		c.walk(target, t, path, strict) // marks target as expanding
		return
	}
	if n.Anchor != "" {
		if c.expanding[n] {
			c.fail(n, path, "alias *%s refers to a value that contains it", n.Anchor)
			c.out = append(c.out, "null"...)
			return
		}
		c.expanding[n] = true
		defer delete(c.expanding, n)
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if isNull(n) {
		c.out = append(c.out, "null"...)
		return
	}
	if n.Kind == yamlv3.ScalarNode && n.Tag == "!!merge" {
		c.fail(n, path, "merge keys (<<) are not supported: write the fields out")
		c.out = append(c.out, "null"...)
		return
	}
	// Types that decode themselves (quantities, times, int-or-string) get
	// the value as it is; their decoder checks it.
	if reflect.PointerTo(t).Implements(jsonUnmarshaler) {
		c.naturalValue(n, path)
		return
	}
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		if n.Kind != yamlv3.ScalarNode {
			c.fail(n, path, "expected a string, got %s", describe(n))
			c.out = append(c.out, "null"...)
			return
		}
		c.str(n, path, strict)
		return
	}
	switch t.Kind() {
	case reflect.Interface:
		c.naturalValue(n, path)
	case reflect.Struct:
		c.structure(n, t, path)
	case reflect.Map:
		c.mapping(n, t, path, strict)
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 && n.Kind == yamlv3.ScalarNode {
			c.str(n, path, false) // []byte is a base64 string
			return
		}
		if n.Kind != yamlv3.SequenceNode {
			c.fail(n, path, "expected a list, got %s", describe(n))
			c.out = append(c.out, "null"...)
			return
		}
		c.out = append(c.out, '[')
		for i, e := range n.Content {
			if i > 0 {
				c.out = append(c.out, ',')
			}
			ep := fmt.Sprintf("%s[%d]", path, i)
			if isNull(e) && t.Elem().Kind() == reflect.String {
				c.fail(e, ep, "null where a string is expected: quote it, or remove the item")
			}
			c.walk(e, t.Elem(), ep, strict)
		}
		c.out = append(c.out, ']')
	case reflect.String:
		if n.Kind != yamlv3.ScalarNode {
			c.fail(n, path, "expected a string, got %s", describe(n))
			c.out = append(c.out, "null"...)
			return
		}
		c.str(n, path, strict)
	case reflect.Bool:
		if n.Kind != yamlv3.ScalarNode || n.Tag != "!!bool" {
			hint := ""
			if n.Kind == yamlv3.ScalarNode && plain(n) {
				if kind, text := yaml11(n.Value); kind == "bool" {
					hint = fmt.Sprintf(" (YAML 1.1 reads %s as %s; write %s)", n.Value, text, text)
				}
			}
			c.fail(n, path, "expected true or false, got %s%s", describe(n), hint)
			c.out = append(c.out, "null"...)
			return
		}
		c.out = strconv.AppendBool(c.out, strings.EqualFold(n.Value, "true"))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v, err := intValue(n)
		if err != nil {
			c.fail(n, path, "expected an integer, got %s", describe(n))
			c.out = append(c.out, "null"...)
			return
		}
		bits := t.Bits()
		if v < -(1<<(bits-1)) || (bits < 64 && v > 1<<(bits-1)-1) {
			c.fail(n, path, "%s is out of range for a %d-bit integer", n.Value, bits)
		}
		c.out = strconv.AppendInt(c.out, v, 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		u, err := uintValue(n)
		if err != nil {
			c.fail(n, path, "expected a non-negative integer, got %s", describe(n))
			c.out = append(c.out, "null"...)
			return
		}
		if bits := t.Bits(); bits < 64 && u > 1<<bits-1 {
			c.fail(n, path, "%s is out of range (at most %d)", n.Value, uint64(1<<bits-1))
		}
		c.out = strconv.AppendUint(c.out, u, 10)
	case reflect.Float32, reflect.Float64:
		f, err := floatValue(n)
		if err != nil {
			c.fail(n, path, "expected a number, got %s", describe(n))
			c.out = append(c.out, "null"...)
			return
		}
		c.out = strconv.AppendFloat(c.out, f, 'g', -1, 64)
	default:
		c.fail(n, path, "internal error: a field of kind %s cannot be read", t.Kind())
		c.out = append(c.out, "null"...)
	}
}

func (c *checker) structure(n *yamlv3.Node, t reflect.Type, path string) {
	if n.Kind != yamlv3.MappingNode {
		c.fail(n, path, "expected a mapping, got %s", describe(n))
		c.out = append(c.out, "null"...)
		return
	}
	fields := structFields(t)
	inMetadata := lastSegment(path) == "metadata"
	c.out = append(c.out, '{')
	first := true
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key, ok := c.key(k, path)
		if !ok {
			continue
		}
		fp := join(path, key)
		ft, ok := fields[key]
		if !ok {
			if readOnly[fp] {
				if fp == "metadata.annotations" {
					mark := len(c.out)
					c.walk(v, reflect.TypeFor[map[string]string](), fp, true)
					c.out = c.out[:mark]
				}
				continue
			}
			c.fail(k, fp, "unknown field %q%s", key, suggest(key, fields))
			continue
		}
		if !first {
			c.out = append(c.out, ',')
		}
		first = false
		c.out = appendJSONString(c.out, key)
		c.out = append(c.out, ':')
		strict := strictStringMaps[key] || (inMetadata && (key == "name" || key == "namespace" || key == "generateName"))
		c.walk(v, ft, fp, strict)
	}
	c.out = append(c.out, '}')
}

func (c *checker) mapping(n *yamlv3.Node, t reflect.Type, path string, strict bool) {
	if n.Kind != yamlv3.MappingNode {
		c.fail(n, path, "expected a mapping, got %s", describe(n))
		c.out = append(c.out, "null"...)
		return
	}
	c.out = append(c.out, '{')
	first := true
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key, ok := c.key(k, path)
		if !ok {
			continue
		}
		kp := join(path, key)
		if t.Key().Kind() == reflect.String {
			c.checkString(k, kp, strict, "key")
		}
		if !first {
			c.out = append(c.out, ',')
		}
		first = false
		c.out = appendJSONString(c.out, key)
		c.out = append(c.out, ':')
		if isNull(v) && t.Elem().Kind() == reflect.String {
			c.fail(v, kp, "null where a string is expected: quote it (\"\" for an empty value), or remove the entry")
		}
		c.walk(v, t.Elem(), kp, strict)
	}
	c.out = append(c.out, '}')
}

// key returns the text of a mapping key, which must be a scalar.
func (c *checker) key(k *yamlv3.Node, path string) (string, bool) {
	if k.Kind == yamlv3.AliasNode && k.Alias != nil {
		k = k.Alias
	}
	if k.Kind != yamlv3.ScalarNode {
		c.fail(k, path, "a key must be a plain value, got %s", describe(k))
		return "", false
	}
	if k.Tag == "!!merge" {
		c.fail(k, path, "merge keys (<<) are not supported: write the fields out")
		return "", false
	}
	return k.Value, true
}

// str appends a scalar as a JSON string, exactly as written.
func (c *checker) str(n *yamlv3.Node, path string, strict bool) {
	c.checkString(n, path, strict, "value")
	c.out = appendJSONString(c.out, n.Value)
}

// checkString refuses a plain scalar that tools reading YAML 1.1 (kubectl,
// the API server, Tetragon) would not read as the same string: a boolean
// (yes, no, on, off, y, n, true, false), or a number whose spelling would
// change (1.10, 010, 0x1F, 1e3). In strict positions (names, labels,
// annotations) every number is refused, as the API server refuses them.
func (c *checker) checkString(n *yamlv3.Node, path string, strict bool, what string) {
	if !utf8.ValidString(n.Value) {
		c.fail(n, path, "%s is not valid UTF-8 (an escape such as \\xff in a quoted string); write the text as UTF-8", what)
		return
	}
	if !plain(n) {
		return
	}
	switch kind, text := yaml11(n.Value); {
	case kind == "bool" || n.Tag == "!!bool":
		if text == "" {
			text = strings.ToLower(n.Value)
		}
		c.fail(n, path, "%s is the boolean %s in YAML 1.1 (kubectl, the API server), not a string: quote it (%q)", n.Value, text, n.Value)
	case kind == "number" && strict:
		c.fail(n, path, "%s is a number; the API server accepts only strings here: quote it (%q)", n.Value, n.Value)
	case kind == "number" && text != n.Value:
		c.fail(n, path, "%s is the number %s in YAML 1.1 (kubectl, Tetragon), not the string %q: quote it (%q)", n.Value, text, n.Value, n.Value)
	case kind == "" && n.Tag != "!!str" && n.Tag != "!!timestamp" && strict:
		c.fail(n, path, "%s is not a string in YAML: quote it (%q)", n.Value, n.Value)
	}
}

// natural appends a value whose Go type decodes itself (or any value): YAML
// 1.2 scalars by their tag.
func (c *checker) natural(n *yamlv3.Node, path string) {
	if c.values++; c.values > maxValues {
		if !c.tooMany {
			c.tooMany = true
			c.fail(n, path, "the document expands to more than %d values (aliases of aliases?)", maxValues)
		}
		c.out = append(c.out, "null"...)
		return
	}
	if n.Anchor != "" {
		if c.expanding[n] {
			c.fail(n, path, "alias *%s refers to a value that contains it", n.Anchor)
			c.out = append(c.out, "null"...)
			return
		}
		c.expanding[n] = true
		defer delete(c.expanding, n)
	}
	if n.Kind == yamlv3.AliasNode {
		target := n.Alias
		if target == nil || c.expanding[target] {
			c.fail(n, path, "alias *%s refers to a value that contains it", n.Value)
			c.out = append(c.out, "null"...)
			return
		}
		c.natural(target, path) // marks target as expanding
		return
	}
	c.naturalValue(n, path)
}

// naturalValue appends a mapping, list or scalar by its tags.
func (c *checker) naturalValue(n *yamlv3.Node, path string) {
	switch n.Kind {
	case yamlv3.MappingNode:
		c.out = append(c.out, '{')
		first := true
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, ok := c.key(n.Content[i], path)
			if !ok {
				continue
			}
			if !first {
				c.out = append(c.out, ',')
			}
			first = false
			c.out = appendJSONString(c.out, key)
			c.out = append(c.out, ':')
			c.natural(n.Content[i+1], join(path, key))
		}
		c.out = append(c.out, '}')
	case yamlv3.SequenceNode:
		c.out = append(c.out, '[')
		for i, e := range n.Content {
			if i > 0 {
				c.out = append(c.out, ',')
			}
			c.natural(e, fmt.Sprintf("%s[%d]", path, i))
		}
		c.out = append(c.out, ']')
	case yamlv3.ScalarNode:
		switch n.Tag {
		case "!!null":
			c.out = append(c.out, "null"...)
		case "!!bool":
			c.out = strconv.AppendBool(c.out, strings.EqualFold(n.Value, "true"))
		case "!!int":
			if v, err := intValue(n); err == nil {
				c.out = strconv.AppendInt(c.out, v, 10)
			} else if u, err := uintValue(n); err == nil {
				c.out = strconv.AppendUint(c.out, u, 10)
			} else {
				c.fail(n, path, "%s is out of range for a 64-bit integer", n.Value)
				c.out = append(c.out, "null"...)
			}
		case "!!float":
			f, err := floatValue(n)
			if err != nil {
				c.fail(n, path, "%s is not a finite number", n.Value)
				c.out = append(c.out, "null"...)
				return
			}
			c.out = strconv.AppendFloat(c.out, f, 'g', -1, 64)
		case "!!merge":
			c.fail(n, path, "merge keys (<<) are not supported: write the fields out")
			c.out = append(c.out, "null"...)
		default: // !!str, !!timestamp, !!binary
			if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
				c.fail(n, path, "YAML tag %s is not supported", n.Tag)
			}
			c.checkString(n, path, false, "value")
			c.out = appendJSONString(c.out, n.Value)
		}
	default:
		c.fail(n, path, "unsupported YAML value")
		c.out = append(c.out, "null"...)
	}
}

// plain reports whether a scalar was written without quotes, block style or
// tag, so that its type comes from its spelling.
func plain(n *yamlv3.Node) bool {
	return n.Style&(yamlv3.TaggedStyle|yamlv3.DoubleQuotedStyle|yamlv3.SingleQuotedStyle|yamlv3.LiteralStyle|yamlv3.FoldedStyle) == 0
}

func appendJSONString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s)
	return append(dst, b...)
}

func intValue(n *yamlv3.Node) (int64, error) {
	if n.Kind != yamlv3.ScalarNode || n.Tag != "!!int" {
		return 0, fmt.Errorf("not an integer")
	}
	return strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
}

func uintValue(n *yamlv3.Node) (uint64, error) {
	if n.Kind != yamlv3.ScalarNode || n.Tag != "!!int" {
		return 0, fmt.Errorf("not an integer")
	}
	v := strings.ReplaceAll(n.Value, "_", "")
	if strings.HasPrefix(v, "-") {
		return 0, fmt.Errorf("negative")
	}
	return strconv.ParseUint(strings.TrimPrefix(v, "+"), 0, 64)
}

func floatValue(n *yamlv3.Node) (float64, error) {
	if n.Kind != yamlv3.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") {
		return 0, fmt.Errorf("not a number")
	}
	if n.Tag == "!!int" {
		if v, err := intValue(n); err == nil {
			return float64(v), nil
		}
		u, err := uintValue(n)
		return float64(u), err
	}
	f, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("not a finite number")
	}
	return f, nil
}

func describe(n *yamlv3.Node) string {
	switch n.Kind {
	case yamlv3.MappingNode:
		return "a mapping"
	case yamlv3.SequenceNode:
		return "a list"
	case yamlv3.AliasNode:
		return "an alias"
	case yamlv3.ScalarNode:
		switch n.Tag {
		case "!!str":
			return strconv.Quote(n.Value)
		default:
			return n.Value
		}
	}
	return "an unsupported value"
}

// structFields maps the JSON names of t's fields, including those of
// embedded and inline structs, to their types.
func structFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" && opts == "" {
			continue
		}
		inline := strings.Contains(","+opts+",", ",inline,")
		if f.Anonymous && (name == "" || inline) {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range structFields(ft) {
					if _, dup := out[k]; !dup {
						out[k] = v
					}
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

// suggest proposes the closest known field name for a misspelt key.
func suggest(key string, fields map[string]reflect.Type) string {
	best, bestD := "", math.MaxInt
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if d := editDistance(strings.ToLower(key), strings.ToLower(k)); d < bestD {
			best, bestD = k, d
		}
	}
	if best != "" && bestD <= 2 && bestD < len(key) {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return ""
}

// Suggest returns the entry of known closest to s within two edits, or "".
func Suggest(s string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(strings.ToLower(s), strings.ToLower(k)); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
