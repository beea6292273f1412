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

	yamlv3 "go.yaml.in/yaml/v3"
)

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// check walks the YAML tree alongside the Go type of out and reports every
// unknown field and every value whose shape cannot fit its field.
func (d *Document) check(out any) Errors {
	t := reflect.TypeOf(out)
	if t == nil || t.Kind() != reflect.Pointer {
		return Errors{{File: d.File, Msg: "internal error: Decode needs a pointer"}}
	}
	c := &checker{doc: d}
	c.walk(d.root, t.Elem(), "")
	return c.errs
}

type checker struct {
	doc  *Document
	errs Errors
}

func (c *checker) fail(n *yamlv3.Node, path, format string, args ...any) {
	c.errs = append(c.errs, &Error{File: c.doc.File, Line: n.Line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (c *checker) walk(n *yamlv3.Node, t reflect.Type, path string) {
	if n.Kind == yamlv3.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if isNull(n) {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	// Types that decode themselves (quantities, times, int-or-string) accept
	// any scalar; leave their content to their own decoder.
	if reflect.PointerTo(t).Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler) {
		return
	}
	switch t.Kind() {
	case reflect.Interface:
		return
	case reflect.Struct:
		if n.Kind != yamlv3.MappingNode {
			c.fail(n, path, "expected a mapping, got %s", describe(n))
			return
		}
		fields := structFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				c.fail(k, join(path, k.Value), "unknown field %q%s", k.Value, suggest(k.Value, fields))
				continue
			}
			c.walk(v, ft, join(path, k.Value))
		}
	case reflect.Map:
		if n.Kind != yamlv3.MappingNode {
			c.fail(n, path, "expected a mapping, got %s", describe(n))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			c.walk(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value))
		}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 && n.Kind == yamlv3.ScalarNode {
			return // []byte is a base64 string
		}
		if n.Kind != yamlv3.SequenceNode {
			c.fail(n, path, "expected a list, got %s", describe(n))
			return
		}
		for i, e := range n.Content {
			c.walk(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.String:
		if n.Kind != yamlv3.ScalarNode {
			c.fail(n, path, "expected a string, got %s", describe(n))
		}
	case reflect.Bool:
		if n.Kind != yamlv3.ScalarNode || n.Tag != "!!bool" {
			c.fail(n, path, "expected true or false, got %s", describe(n))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v, err := intValue(n)
		if err != nil {
			c.fail(n, path, "expected an integer, got %s", describe(n))
			return
		}
		bits := t.Bits()
		if v < -(1<<(bits-1)) || (bits < 64 && v > 1<<(bits-1)-1) {
			c.fail(n, path, "%s is out of range for a %d-bit integer", n.Value, bits)
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		u, err := uintValue(n)
		if err != nil {
			c.fail(n, path, "expected a non-negative integer, got %s", describe(n))
			return
		}
		if bits := t.Bits(); bits < 64 && u > 1<<bits-1 {
			c.fail(n, path, "%s is out of range (at most %d)", n.Value, uint64(1<<bits-1))
		}
	case reflect.Float32, reflect.Float64:
		if n.Kind != yamlv3.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") {
			c.fail(n, path, "expected a number, got %s", describe(n))
		}
	}
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
	return strconv.ParseUint(v, 0, 64)
}

func describe(n *yamlv3.Node) string {
	switch n.Kind {
	case yamlv3.MappingNode:
		return "a mapping"
	case yamlv3.SequenceNode:
		return "a list"
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
