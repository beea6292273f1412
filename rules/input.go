package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/vigilsec/vigil/event"
)

// inputParser turns exported JSON lines into rule inputs. It parses JSON
// straight into Rego values, and keeps the values of the process and
// parent objects it met, by their exact text: a process's events repeat
// the same objects, which are most of an event's bytes, so they are
// converted once. Not safe for concurrent use.
type inputParser struct {
	procs map[string]cachedValue
	keys  map[string]*ast.Term
	// maxProcs bounds procs; it is emptied when full.
	maxProcs int
}

func newInputParser(maxProcs int) *inputParser {
	return &inputParser{procs: map[string]cachedValue{}, maxProcs: maxProcs}
}

// ParseInput parses one exported event (a JSON object) into a rule input
// and returns its type. Objects that are not events a rule can consume
// (alerts, lost_events, ...) have type event.TypeUnknown.
func ParseInput(line []byte) (ast.Value, event.Type, error) {
	return (&inputParser{}).parse(line)
}

func (p *inputParser) parse(line []byte) (ast.Value, event.Type, error) {
	d := decoder{b: line, p: p}
	d.space()
	if d.i >= len(d.b) || d.b[d.i] != '{' {
		return nil, event.TypeUnknown, errors.New("not a JSON object")
	}
	v, err := d.value(0)
	if err != nil {
		return nil, event.TypeUnknown, err
	}
	d.space()
	if d.i != len(d.b) {
		return nil, event.TypeUnknown, fmt.Errorf("offset %d: data after the object", d.i)
	}
	return v, TypeOf(v.(ast.Object)), nil
}

// TypeOf returns the type of an exported event object: its one event key.
func TypeOf(obj ast.Object) event.Type {
	for _, t := range event.Types() {
		if obj.Get(ast.StringTerm(t.String())) != nil {
			if consumable(t) {
				return t
			}
			return event.TypeUnknown
		}
	}
	return event.TypeUnknown
}

const maxDepth = 64

// numberPattern is JSON's number grammar.
var numberPattern = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// cachedKeys are the members whose object values the parser keeps by text:
// the processes, and within new processes the parts most processes share
// (capabilities, namespaces, pod).
var cachedKeys = map[string]bool{"process": true, "parent": true, "cap": true, "ns": true, "pod": true}

type decoder struct {
	b     []byte
	i     int
	p     *inputParser
	pairs [][2]*ast.Term
}

func (d *decoder) errorf(format string, args ...any) error {
	return fmt.Errorf("offset %d: %s", d.i, fmt.Sprintf(format, args...))
}

func (d *decoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) value(depth int) (ast.Value, error) {
	if depth > maxDepth {
		return nil, d.errorf("nested deeper than %d", maxDepth)
	}
	d.space()
	if d.i >= len(d.b) {
		return nil, d.errorf("unexpected end")
	}
	switch c := d.b[d.i]; {
	case c == '{':
		return d.object(depth)
	case c == '[':
		return d.array(depth)
	case c == '"':
		s, err := d.str()
		if err != nil {
			return nil, err
		}
		return ast.String(s), nil
	case c == 't':
		return d.literal("true", ast.Boolean(true))
	case c == 'f':
		return d.literal("false", ast.Boolean(false))
	case c == 'n':
		return d.literal("null", ast.Null{})
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	default:
		return nil, d.errorf("unexpected %q", c)
	}
}

func (d *decoder) literal(word string, v ast.Value) (ast.Value, error) {
	if len(d.b)-d.i < len(word) || string(d.b[d.i:d.i+len(word)]) != word {
		return nil, d.errorf("invalid literal")
	}
	d.i += len(word)
	return v, nil
}

func (d *decoder) number() (ast.Value, error) {
	start := d.i
	for d.i < len(d.b) {
		c := d.b[d.i]
		if c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			d.i++
			continue
		}
		break
	}
	n := json.Number(d.b[start:d.i])
	if _, err := n.Float64(); err != nil || !numberPattern.Match(d.b[start:d.i]) {
		return nil, d.errorf("invalid number %q", string(n))
	}
	return ast.Number(n), nil
}

func (d *decoder) str() (string, error) {
	d.i++ // opening quote
	start := d.i
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			s := string(d.b[start:d.i])
			d.i++
			return s, nil
		case c == '\\':
			return d.escaped(start)
		case c < 0x20:
			return "", d.errorf("control character in a string")
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(d.b[d.i:])
			if r == utf8.RuneError && size == 1 {
				return "", d.errorf("invalid UTF-8 in a string")
			}
			d.i += size
		default:
			d.i++
		}
	}
	return "", d.errorf("unterminated string")
}

// escaped decodes a string with escapes, which the exporter writes only for
// quotes, backslashes and control characters: rare, so left to encoding/json.
func (d *decoder) escaped(start int) (string, error) {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case '\\':
			d.i += 2
			continue
		case '"':
			var s string
			if err := json.Unmarshal(d.b[start-1:d.i+1], &s); err != nil {
				return "", d.errorf("%v", err)
			}
			d.i++
			return s, nil
		}
		d.i++
	}
	return "", d.errorf("unterminated string")
}

// key decodes an object's key. The exported keys are few: their terms
// are made once per parser and shared (terms are never modified).
func (d *decoder) key() (*ast.Term, error) {
	if d.p != nil {
		if end := bytes.IndexByte(d.b[d.i+1:], '"'); end >= 0 {
			raw := d.b[d.i+1 : d.i+1+end]
			if t, ok := d.p.keys[string(raw)]; ok {
				d.i += end + 2
				return t, nil
			}
		}
	}
	k, err := d.str()
	if err != nil {
		return nil, err
	}
	t := ast.StringTerm(k)
	if d.p != nil && len(d.p.keys) < maxKeys && !strings.ContainsAny(k, `"\\`) {
		if d.p.keys == nil {
			d.p.keys = map[string]*ast.Term{}
		}
		d.p.keys[k] = t
	}
	return t, nil
}

// maxKeys bounds the parser's shared keys: objects with keys of their own
// (labels, annotations) do not grow it past that.
const maxKeys = 1024

func (d *decoder) array(depth int) (ast.Value, error) {
	d.i++
	var terms []*ast.Term
	d.space()
	if d.i < len(d.b) && d.b[d.i] == ']' {
		d.i++
		return ast.NewArray(), nil
	}
	for {
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		terms = append(terms, ast.NewTerm(v))
		d.space()
		if d.i >= len(d.b) {
			return nil, d.errorf("unterminated array")
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case ']':
			d.i++
			return ast.NewArray(terms...), nil
		default:
			return nil, d.errorf("want , or ] in an array")
		}
	}
}

func (d *decoder) object(depth int) (ast.Value, error) {
	d.i++
	d.space()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return ast.NewObject(), nil
	}
	// The members are gathered on the decoder's stack, then the object is
	// made at once.
	mark := len(d.pairs)
	defer func() { d.pairs = d.pairs[:mark] }()
	for {
		d.space()
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			return nil, d.errorf("want a key")
		}
		kt, err := d.key()
		if err != nil {
			return nil, err
		}
		k := string(kt.Value.(ast.String))
		d.space()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return nil, d.errorf("want : after a key")
		}
		d.i++
		var v ast.Value
		if cachedKeys[k] && d.p != nil && d.p.maxProcs > 0 {
			v, err = d.cached(depth)
		} else {
			v, err = d.value(depth + 1)
		}
		if err != nil {
			return nil, err
		}
		d.pairs = append(d.pairs, [2]*ast.Term{kt, ast.NewTerm(v)})
		d.space()
		if d.i >= len(d.b) {
			return nil, d.errorf("unterminated object")
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return newObject(d.pairs[mark:]), nil
		default:
			return nil, d.errorf("want , or } in an object")
		}
	}
}

// newObject makes an object of members; of duplicate keys, the last one
// counts, as with encoding/json.
func newObject(kv [][2]*ast.Term) ast.Object {
	for i := 1; i < len(kv); i++ {
		for j := 0; j < i; j++ {
			if kv[i][0] == kv[j][0] || kv[i][0].Value.Compare(kv[j][0].Value) == 0 {
				obj := ast.NewObject()
				for _, p := range kv {
					obj.Insert(p[0], p[1])
				}
				return obj
			}
		}
	}
	return ast.NewObject(kv...)
}

// cached parses an object, or reuses the value of the same text. Entries
// are found by their first bytes and confirmed by comparing the whole
// text: an object's text is never the prefix of another's, so no scan
// for its end is needed when it is known. Values are never modified once
// built, so sharing them is safe.
func (d *decoder) cached(depth int) (ast.Value, error) {
	d.space()
	start := d.i
	key := d.b[start:min(start+cacheKeyLen, len(d.b))]
	if c, ok := d.p.procs[string(key)]; ok && bytes.HasPrefix(d.b[start:], c.text) {
		d.i += len(c.text)
		return c.v, nil
	}
	end, ok := d.skip()
	if !ok {
		return d.value(depth + 1)
	}
	v, err := d.value(depth + 1)
	if err != nil {
		return nil, err
	}
	if len(d.p.procs) >= d.p.maxProcs {
		clear(d.p.procs)
	}
	text := d.b[start:end]
	d.p.procs[string(text[:min(cacheKeyLen, len(text))])] = cachedValue{text: bytes.Clone(text), v: v}
	return v, nil
}

// cacheKeyLen is how many of its first bytes find a cached object: enough
// to hold a process's exec_id.
const cacheKeyLen = 128

type cachedValue struct {
	text []byte
	v    ast.Value
}

// skip returns the end of the object at d.i without decoding it; false
// when there is none (not an object, or unbalanced).
func (d *decoder) skip() (int, bool) {
	if d.i >= len(d.b) || d.b[d.i] != '{' {
		return 0, false
	}
	level := 0
	for j := d.i; j < len(d.b); j++ {
		switch d.b[j] {
		case '"':
			// Jump to the closing quote: one not escaped by an odd
			// number of backslashes.
			for {
				k := bytes.IndexByte(d.b[j+1:], '"')
				if k < 0 {
					return 0, false
				}
				j += 1 + k
				n := 0
				for n < j && d.b[j-1-n] == '\\' {
					n++
				}
				if n%2 == 0 {
					break
				}
			}
		case '{', '[':
			level++
		case '}', ']':
			level--
			if level == 0 {
				return j + 1, true
			}
		}
	}
	return 0, false
}
