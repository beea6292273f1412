package tetragonschema

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	// The well-known types the Tetragon files import, registered in
	// protoregistry.GlobalFiles.
	_ "google.golang.org/protobuf/types/known/durationpb"
	_ "google.golang.org/protobuf/types/known/fieldmaskpb"
	_ "google.golang.org/protobuf/types/known/timestamppb"
	_ "google.golang.org/protobuf/types/known/wrapperspb"
)

// To regenerate from a checkout of Tetragon (read only, never committed):
// TETRAGON=~/src/tetragon go generate ./exporter/tetragonschema
//go:generate sh -c "go run ./genschema -proto $TETRAGON/api/v1/tetragon -source github.com/cilium/tetragon@`git -C $TETRAGON rev-parse HEAD`/api/v1/tetragon -out tetragon.schema.json"

//go:embed tetragon.schema.json
var schemaJSON []byte

// EventsMessage is the message every exported line is: one event and the
// node name and time.
const EventsMessage = "tetragon.GetEventsResponse"

// Schema is Tetragon's event schema.
type Schema struct {
	// Source names the Tetragon files the schema was generated from.
	Source string
	files  *protoregistry.Files
	events protoreflect.MessageDescriptor
}

var load = sync.OnceValues(func() (*Schema, error) { return parse(schemaJSON) })

// Load returns the schema embedded in the package.
func Load() (*Schema, error) { return load() }

func parse(doc []byte) (*Schema, error) {
	var wrap struct {
		Source string          `json:"source"`
		Set    json.RawMessage `json:"fileDescriptorSet"`
	}
	if err := json.Unmarshal(doc, &wrap); err != nil {
		return nil, fmt.Errorf("tetragon schema: %w", err)
	}
	var set descriptorpb.FileDescriptorSet
	if err := protojson.Unmarshal(wrap.Set, &set); err != nil {
		return nil, fmt.Errorf("tetragon schema: %w", err)
	}
	local := new(protoregistry.Files)
	res := resolver{local}
	for _, fdp := range set.File {
		fd, err := protodesc.NewFile(fdp, res)
		if err != nil {
			return nil, fmt.Errorf("tetragon schema: %s: %w", fdp.GetName(), err)
		}
		if err := local.RegisterFile(fd); err != nil {
			return nil, fmt.Errorf("tetragon schema: %s: %w", fdp.GetName(), err)
		}
	}
	d, err := local.FindDescriptorByName(EventsMessage)
	if err != nil {
		return nil, fmt.Errorf("tetragon schema: %s: %w", EventsMessage, err)
	}
	md, ok := d.(protoreflect.MessageDescriptor)
	if !ok {
		return nil, fmt.Errorf("tetragon schema: %s is not a message", EventsMessage)
	}
	return &Schema{Source: wrap.Source, files: local, events: md}, nil
}

// resolver finds Tetragon's files in local and the well-known types in
// the global registry.
type resolver struct{ local *protoregistry.Files }

func (r resolver) FindFileByPath(path string) (protoreflect.FileDescriptor, error) {
	if fd, err := r.local.FindFileByPath(path); err == nil {
		return fd, nil
	}
	return protoregistry.GlobalFiles.FindFileByPath(path)
}

func (r resolver) FindDescriptorByName(name protoreflect.FullName) (protoreflect.Descriptor, error) {
	if d, err := r.local.FindDescriptorByName(name); err == nil {
		return d, nil
	}
	return protoregistry.GlobalFiles.FindDescriptorByName(name)
}

// Events returns the descriptor of GetEventsResponse.
func (s *Schema) Events() protoreflect.MessageDescriptor { return s.events }

// Message returns the descriptor of a message by its full name, for
// example "tetragon.Process".
func (s *Schema) Message(name protoreflect.FullName) (protoreflect.MessageDescriptor, error) {
	d, err := s.files.FindDescriptorByName(name)
	if err != nil {
		return nil, err
	}
	md, ok := d.(protoreflect.MessageDescriptor)
	if !ok {
		return nil, fmt.Errorf("%s is not a message", name)
	}
	return md, nil
}

// ErrNoEvent is returned for a line that parses but carries no event.
var ErrNoEvent = errors.New("no event member")

// Check parses line as one GetEventsResponse, strictly, and returns the
// name of its event member ("process_exec"). It fails on unknown fields,
// wrong types, unknown enum names, duplicate keys, and on a line without
// an event.
func (s *Schema) Check(line []byte) (string, error) {
	m := dynamicpb.NewMessage(s.events)
	if err := (protojson.UnmarshalOptions{}).Unmarshal(line, m); err != nil {
		return "", err
	}
	fd := m.WhichOneof(s.events.Oneofs().ByName("event"))
	if fd == nil {
		return "", ErrNoEvent
	}
	return string(fd.Name()), nil
}

// CheckMessage parses data strictly as the message named name.
func (s *Schema) CheckMessage(name protoreflect.FullName, data []byte) error {
	md, err := s.Message(name)
	if err != nil {
		return err
	}
	return (protojson.UnmarshalOptions{}).Unmarshal(data, dynamicpb.NewMessage(md))
}
