package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	_ "google.golang.org/protobuf/types/known/wrapperspb"
)

const sample = `// comment
syntax = "proto3";
package t;
import "google/protobuf/wrappers.proto";
option go_package = "x";
/* a block
   comment */
enum Kind {
  KIND_A = 0;
  KIND_B = 2 [deprecated = true];
}
message Outer {
  message Inner { string s = 1; }
  reserved 7 to 9;
  Inner inner = 1;
  repeated Kind kinds = 2;
  map<string, string> pod_labels = 3;
  google.protobuf.UInt32Value pid = 4;
  oneof arg {
    int32 int_arg = 5;
    Inner inner_arg = 6 [deprecated = true];
  }
  uint64 number = 10;
}
service S { rpc Get(Outer) returns (Outer) {} }
`

// The parser's output builds into a valid descriptor with the members,
// types, oneof and map entry protoc would give.
func TestParse(t *testing.T) {
	fd, err := parseFile("t/sample.proto", []byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	files := []*descriptorpb.FileDescriptorProto{fd}
	if err := resolve(files); err != nil {
		t.Fatal(err)
	}
	f, err := protodesc.NewFile(fd, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	outer := f.Messages().ByName("Outer")
	var got []string
	for i := 0; i < outer.Fields().Len(); i++ {
		fd := outer.Fields().Get(i)
		desc := string(fd.Name()) + ":" + fd.Kind().String() + ":" + string(fd.JSONName())
		if fd.Message() != nil {
			desc += ":" + string(fd.Message().FullName())
		}
		if fd.Enum() != nil {
			desc += ":" + string(fd.Enum().FullName())
		}
		if o := fd.ContainingOneof(); o != nil {
			desc += ":oneof " + string(o.Name())
		}
		if fd.IsMap() {
			desc += ":map"
		} else if fd.IsList() {
			desc += ":list"
		}
		got = append(got, desc)
	}
	want := []string{
		"inner:message:inner:t.Outer.Inner",
		"kinds:enum:kinds:t.Kind:list",
		"pod_labels:message:podLabels:t.Outer.PodLabelsEntry:map",
		"pid:message:pid:google.protobuf.UInt32Value",
		"int_arg:int32:intArg:oneof arg",
		"inner_arg:message:innerArg:t.Outer.Inner:oneof arg",
		"number:uint64:number",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
	if v := f.Enums().ByName("Kind").Values().ByName("KIND_B"); v == nil || v.Number() != 2 {
		t.Errorf("enum value KIND_B: %v", v)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ src, err string }{
		{"syntax = \"proto3\";\nmessage M {\n  optional int32 a = 1;\n}\n", `x.proto:3: "optional" is not supported`},
		{"syntax = \"proto3\";\nmessage M {\n  int32 a = x;\n}\n", `x.proto:3: field a: bad number "x"`},
		{"syntax = \"proto2\";\n", `syntax "proto2", want proto3`},
		{"syntax = \"proto3\";\nmessage M {\n  Missing a = 1;\n}\n", `M.a: unknown type Missing`},
	} {
		fd, err := parseFile("x.proto", []byte(tc.src))
		if err == nil {
			err = resolve([]*descriptorpb.FileDescriptorProto{fd})
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: error %v, want %q", tc.src, err, tc.err)
		}
	}
}

// With TETRAGON set to a checkout of github.com/cilium/tetragon, the
// committed schema must be what genschema makes of its .proto files.
func TestCommittedSchemaIsGenerated(t *testing.T) {
	dir := os.Getenv("TETRAGON")
	if dir == "" {
		t.Skip("TETRAGON (a checkout of github.com/cilium/tetragon) is not set")
	}
	out := filepath.Join(t.TempDir(), "schema.json")
	if err := run(filepath.Join(dir, "api/v1/tetragon"), "test", out); err != nil {
		t.Fatal(err)
	}
	set := func(path string) *descriptorpb.FileDescriptorSet {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var wrap struct {
			Set json.RawMessage `json:"fileDescriptorSet"`
		}
		if err := json.Unmarshal(data, &wrap); err != nil {
			t.Fatal(err)
		}
		var s descriptorpb.FileDescriptorSet
		if err := protojson.Unmarshal(wrap.Set, &s); err != nil {
			t.Fatal(err)
		}
		return &s
	}
	a, _ := protojson.Marshal(set("../tetragon.schema.json"))
	b, _ := protojson.Marshal(set(out))
	if !bytes.Equal(a, b) {
		t.Errorf("tetragon.schema.json differs from the .proto files of %s: run go generate ./exporter/tetragonschema", dir)
	}
}
