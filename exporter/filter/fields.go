package filter

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// FieldMask keeps or drops members of the event object of each exported
// line. Paths are dotted member names below the event key, the same for
// every event type: "process.arguments" is process_exec.process.arguments
// in an exec and process_kprobe.process.arguments in a kprobe event. A path
// through an array applies to each of its objects ("args.label").
// "node_name" and "time" are always kept.
//
// With include paths, only those members (and what lies below them) are
// kept; exclude paths are dropped, and exclusion wins over inclusion.
type FieldMask struct {
	include, exclude *maskNode
}

type maskNode struct {
	children map[string]*maskNode
	leaf     bool // the whole member
}

// topFields lists the members of event objects, to catch misspelled paths.
var topFields = []string{
	// process events
	"process", "parent", "status", "signal", "core_dumped", "time",
	"function_name", "subsys", "event", "args", "return", "action", "policy_name", "message", "tags",
	"mechanism", "monitor", "action_note", "errno",
	// flows
	"verdict", "drop_reason_desc", "IP", "l4", "source", "destination", "Type", "node_name",
	"traffic_direction", "is_reply", "egress_denied_by", "ingress_denied_by", "Summary", "policy_names",
	"phase", "bytes_sent", "bytes_received", "packets_sent", "packets_received", "count",
	// alerts, loss records
	"rule", "description", "pod", "reason", "sink", "number_of_dropped_process_events",
}

// NewFieldMask compiles include and exclude paths. source names the flags
// in errors, for example "--export-field-".
func NewFieldMask(include, exclude []string) (*FieldMask, error) {
	m := &FieldMask{}
	var err error
	if m.include, err = buildMask("--export-field-include", include); err != nil {
		return nil, err
	}
	if m.exclude, err = buildMask("--export-field-exclude", exclude); err != nil {
		return nil, err
	}
	if m.include == nil && m.exclude == nil {
		return nil, nil
	}
	return m, nil
}

func buildMask(source string, paths []string) (*maskNode, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	root := &maskNode{}
	for i, p := range paths {
		field := fmt.Sprintf("%s[%d]", source, i)
		parts := strings.Split(strings.TrimSpace(p), ".")
		for _, part := range parts {
			if part == "" || strings.ContainsAny(part, "\"\\ \t") {
				return nil, &Error{Source: field, Err: fmt.Errorf("bad path %q: want dotted member names like process.arguments", p)}
			}
		}
		if !slices.Contains(topFields, parts[0]) {
			return nil, &Error{Source: field, Err: fmt.Errorf("unknown member %q in path %q (members of event objects: %s)",
				parts[0], p, strings.Join(topFields, ", "))}
		}
		n := root
		for _, part := range parts {
			if n.children == nil {
				n.children = map[string]*maskNode{}
			}
			c := n.children[part]
			if c == nil {
				c = &maskNode{}
				n.children[part] = c
			}
			n = c
		}
		n.leaf = true
	}
	return root, nil
}

var errMalformed = errors.New("malformed JSON")

// Apply appends to dst the line with the mask applied to its event object.
// line must be one JSON object as the encoder writes it; on anything else
// Apply appends line unchanged.
func (m *FieldMask) Apply(dst, line []byte) []byte {
	if m == nil {
		return append(dst, line...)
	}
	start := len(dst)
	out, err := m.applyTop(dst, line)
	if err != nil {
		return append(dst[:start], line...)
	}
	return out
}

func (m *FieldMask) applyTop(dst, b []byte) ([]byte, error) {
	if len(b) < 2 || b[0] != '{' {
		return nil, errMalformed
	}
	dst = append(dst, '{')
	i := 1
	first := true
	for i < len(b) && b[i] != '}' {
		if b[i] == ',' {
			i++
		}
		keyStart := i
		keyEnd, err := skipString(b, i)
		if err != nil || keyEnd >= len(b) || b[keyEnd] != ':' {
			return nil, errMalformed
		}
		valStart := keyEnd + 1
		valEnd, err := skipValue(b, valStart)
		if err != nil {
			return nil, err
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, b[keyStart:valStart]...)
		key := string(b[keyStart+1 : keyEnd-1])
		if key == "node_name" || key == "time" || b[valStart] != '{' {
			dst = append(dst, b[valStart:valEnd]...)
		} else {
			dst, err = filterValue(dst, b[valStart:valEnd], m.include, m.exclude)
			if err != nil {
				return nil, err
			}
		}
		i = valEnd
	}
	return append(dst, '}'), nil
}

// filterValue copies the object or array v, keeping members per inc (nil:
// all) and dropping those exc marks.
func filterValue(dst, v []byte, inc, exc *maskNode) ([]byte, error) {
	if (inc == nil || inc.leaf) && exc == nil {
		return append(dst, v...), nil
	}
	switch v[0] {
	case '[':
		dst = append(dst, '[')
		i := 1
		first := true
		for i < len(v) && v[i] != ']' {
			if v[i] == ',' {
				i++
			}
			end, err := skipValue(v, i)
			if err != nil {
				return nil, err
			}
			if !first {
				dst = append(dst, ',')
			}
			first = false
			if dst, err = filterValue(dst, v[i:end], inc, exc); err != nil {
				return nil, err
			}
			i = end
		}
		return append(dst, ']'), nil
	case '{':
		dst = append(dst, '{')
		i := 1
		first := true
		for i < len(v) && v[i] != '}' {
			if v[i] == ',' {
				i++
			}
			keyStart := i
			keyEnd, err := skipString(v, i)
			if err != nil || keyEnd >= len(v) || v[keyEnd] != ':' {
				return nil, errMalformed
			}
			valEnd, err := skipValue(v, keyEnd+1)
			if err != nil {
				return nil, err
			}
			key := v[keyStart+1 : keyEnd-1]
			var cinc, cexc *maskNode
			keep := true
			if inc != nil && !inc.leaf {
				cinc = inc.children[string(key)]
				keep = cinc != nil
			}
			if exc != nil {
				cexc = exc.children[string(key)]
				if cexc != nil && cexc.leaf {
					keep = false
				}
			}
			if keep {
				if !first {
					dst = append(dst, ',')
				}
				first = false
				dst = append(dst, v[keyStart:keyEnd+1]...)
				if dst, err = filterValue(dst, v[keyEnd+1:valEnd], cinc, cexc); err != nil {
					return nil, err
				}
			}
			i = valEnd
		}
		return append(dst, '}'), nil
	}
	// A scalar below a path that goes deeper: keep it as it is.
	return append(dst, v...), nil
}

// skipString returns the index after the JSON string starting at b[i].
func skipString(b []byte, i int) (int, error) {
	if i >= len(b) || b[i] != '"' {
		return 0, errMalformed
	}
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, nil
		}
	}
	return 0, errMalformed
}

// skipValue returns the index after the compact JSON value starting at b[i].
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errMalformed
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				end, err := skipString(b, i)
				if err != nil {
					return 0, err
				}
				i = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, nil
				}
			}
		}
		return 0, errMalformed
	default:
		start := i
		for ; i < len(b); i++ {
			switch b[i] {
			case ',', '}', ']', '{', '[', '"', ':':
				if i == start {
					return 0, errMalformed
				}
				return i, nil
			}
		}
		return i, nil
	}
}
