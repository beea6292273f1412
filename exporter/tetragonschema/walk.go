package tetragonschema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Member is one member of an exported JSON object, named by its path from
// the top of the line: "process_exec.process.cap.permitted",
// "process_kprobe.args[].int_arg" (array elements are "[]").
type Member struct {
	Path string
	// Type is the member's type in Tetragon's schema ("uint32",
	// "tetragon.Process", "repeated tetragon.CapabilitiesType"), empty
	// when the schema has no such member.
	Type string
	// Message and Field name the member in the schema
	// ("tetragon.Process", "exec_id"); Field is the member's own name
	// when the schema has no such member.
	Message, Field string
}

// Members lists the members of line with their types in the schema, sorted
// and without repeats. A member the schema lacks is listed with an empty
// Type and its own members are not listed. Values are not checked; Check
// does that.
func (s *Schema) Members(line []byte) ([]Member, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("not an object")
	}
	seen := map[string]Member{}
	walkMessage(s.events, obj, "", seen)
	out := make([]Member, 0, len(seen))
	for _, m := range seen {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// field finds a member by its proto name or its JSON name, as protojson does.
func field(md protoreflect.MessageDescriptor, name string) protoreflect.FieldDescriptor {
	if fd := md.Fields().ByName(protoreflect.Name(name)); fd != nil {
		return fd
	}
	return md.Fields().ByJSONName(name)
}

func walkMessage(md protoreflect.MessageDescriptor, obj map[string]any, prefix string, seen map[string]Member) {
	for name, v := range obj {
		path := join(prefix, name)
		fd := field(md, name)
		if fd == nil {
			seen[path] = Member{Path: path, Message: string(md.FullName()), Field: name}
			continue
		}
		seen[path] = Member{Path: path, Type: TypeName(fd), Message: string(md.FullName()), Field: string(fd.Name())}
		if fd.IsMap() || fd.Message() == nil || isWellKnown(fd.Message()) {
			continue
		}
		if fd.IsList() {
			list, _ := v.([]any)
			for _, e := range list {
				if o, ok := e.(map[string]any); ok {
					walkMessage(fd.Message(), o, path+"[]", seen)
				}
			}
			continue
		}
		if o, ok := v.(map[string]any); ok {
			walkMessage(fd.Message(), o, path, seen)
		}
	}
}

func isWellKnown(md protoreflect.MessageDescriptor) bool {
	return md.ParentFile().Package() == "google.protobuf"
}

// TypeName describes the type of a field: "string", "tetragon.Process",
// "repeated tetragon.CapabilitiesType", "map<string, string>".
func TypeName(fd protoreflect.FieldDescriptor) string {
	if fd.IsMap() {
		return "map<" + TypeName(fd.MapKey()) + ", " + TypeName(fd.MapValue()) + ">"
	}
	var t string
	switch {
	case fd.Message() != nil:
		t = string(fd.Message().FullName())
	case fd.Enum() != nil:
		t = string(fd.Enum().FullName())
	default:
		t = fd.Kind().String()
	}
	if fd.IsList() {
		return "repeated " + t
	}
	return t
}

// Known decodes line and removes every member Tetragon's schema lacks, at
// any depth: what a reader of Tetragon's schema can use of the line.
func (s *Schema) Known(line []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, err
	}
	prune(s.events, obj)
	return obj, nil
}

func prune(md protoreflect.MessageDescriptor, obj map[string]any) {
	for name, v := range obj {
		fd := field(md, name)
		if fd == nil {
			delete(obj, name)
			continue
		}
		if fd.IsMap() || fd.Message() == nil || isWellKnown(fd.Message()) {
			continue
		}
		if fd.IsList() {
			list, _ := v.([]any)
			for _, e := range list {
				if o, ok := e.(map[string]any); ok {
					prune(fd.Message(), o)
				}
			}
			continue
		}
		if o, ok := v.(map[string]any); ok {
			prune(fd.Message(), o)
		}
	}
}

// Fields lists every member of every message reachable from the event
// members of GetEventsResponse, each message once, in a stable order.
func (s *Schema) Fields() []Member {
	var out []Member
	done := map[protoreflect.FullName]bool{}
	var visit func(md protoreflect.MessageDescriptor)
	visit = func(md protoreflect.MessageDescriptor) {
		if done[md.FullName()] || isWellKnown(md) || md.IsMapEntry() {
			return
		}
		done[md.FullName()] = true
		var next []protoreflect.MessageDescriptor
		for i := 0; i < md.Fields().Len(); i++ {
			fd := md.Fields().Get(i)
			out = append(out, Member{Type: TypeName(fd), Message: string(md.FullName()), Field: string(fd.Name())})
			if m := fd.Message(); m != nil && !fd.IsMap() {
				next = append(next, m)
			}
		}
		for _, m := range next {
			visit(m)
		}
	}
	visit(s.events)
	return out
}
