package manifest

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	yamlv3 "go.yaml.in/yaml/v3"
)

type testSpec struct {
	Call    string    `json:"call"`
	Index   uint32    `json:"index"`
	Enabled bool      `json:"enabled"`
	Offset  int8      `json:"offset"`
	Args    []testArg `json:"args"`
	Labels  map[string]string
}

type testArg struct {
	Type string `json:"type"`
}

type testDoc struct {
	TypeMeta `json:",inline"`
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec testSpec `json:"spec"`
}

func TestSplitAndDecode(t *testing.T) {
	src := `# leading comment
apiVersion: v1
kind: Thing
metadata:
  name: first
spec:
  call: openat
  index: 3
  args:
  - type: int
---
---
apiVersion: v1
kind: Other
metadata: {name: second}
`
	docs, err := Split("f.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 {
		t.Fatalf("got %d documents, want 2", len(docs))
	}
	if docs[0].Kind != "Thing" || docs[0].Name != "first" || docs[0].Line != 2 {
		t.Errorf("doc 0 = kind %q name %q line %d", docs[0].Kind, docs[0].Name, docs[0].Line)
	}
	if docs[1].Kind != "Other" || docs[1].Name != "second" || docs[1].Index != 1 || docs[1].Line != 13 {
		t.Errorf("doc 1 = kind %q name %q index %d line %d", docs[1].Kind, docs[1].Name, docs[1].Index, docs[1].Line)
	}
	var d testDoc
	if err := docs[0].Decode(&d); err != nil {
		t.Fatal(err)
	}
	want := testSpec{Call: "openat", Index: 3, Args: []testArg{{Type: "int"}}}
	if diff := cmp.Diff(want, d.Spec); diff != "" {
		t.Errorf("spec (-want +got):\n%s", diff)
	}
	if got := docs[0].LineOf("spec.args[0].type"); got != 10 {
		t.Errorf("LineOf(spec.args[0].type) = %d, want 10", got)
	}
	if got := docs[0].LineOf("spec.args[4].type"); got != 9 {
		t.Errorf("LineOf of a missing element = %d, want the list's line 9", got)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"unknown field", "apiVersion: v1\nkind: T\nspec:\n  cal: x\n",
			[]string{`f.yaml:4: spec.cal: unknown field "cal" (did you mean "call"?)`}},
		{"unknown nested", "apiVersion: v1\nkind: T\nspec:\n  args:\n  - type: int\n  - tpye: x\n",
			[]string{`f.yaml:6: spec.args[1].tpye: unknown field "tpye" (did you mean "type"?)`}},
		{"wrong type", "apiVersion: v1\nkind: T\nspec:\n  index: two\n",
			[]string{`f.yaml:4: spec.index: expected a non-negative integer, got "two"`}},
		{"negative uint", "apiVersion: v1\nkind: T\nspec:\n  index: -1\n",
			[]string{`f.yaml:4: spec.index: expected a non-negative integer, got -1`}},
		{"out of range", "apiVersion: v1\nkind: T\nspec:\n  offset: 300\n",
			[]string{`f.yaml:4: spec.offset: 300 is out of range for a 8-bit integer`}},
		{"bool", "apiVersion: v1\nkind: T\nspec:\n  enabled: maybe\n",
			[]string{`f.yaml:4: spec.enabled: expected true or false, got "maybe"`}},
		{"list expected", "apiVersion: v1\nkind: T\nspec:\n  args: {type: x}\n",
			[]string{`f.yaml:4: spec.args: expected a list, got a mapping`}},
		{"several", "apiVersion: v1\nkind: T\nfoo: 1\nspec:\n  bar: 2\n",
			[]string{`f.yaml:3: foo: unknown field "foo"`, `f.yaml:5: spec.bar: unknown field "bar"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs, err := Split("f.yaml", []byte(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			var d testDoc
			err = docs[0].Decode(&d)
			var got []string
			for _, e := range AsErrors("f.yaml", err) {
				got = append(got, e.Error())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSyntaxError(t *testing.T) {
	_, err := Split("bad.yaml", []byte("apiVersion: v1\nkind: T\nspec:\n  call: [unclosed\n"))
	var list Errors
	if !errors.As(err, &list) || len(list) != 1 {
		t.Fatalf("want one located error, got %v", err)
	}
	if list[0].Line == 0 || !strings.HasPrefix(list[0].Error(), "bad.yaml:") || !strings.Contains(list[0].Msg, "invalid YAML") {
		t.Errorf("unexpected error %q", list[0].Error())
	}
	if _, err := Split("s.yaml", []byte("- a\n- b\n")); err == nil || !strings.Contains(err.Error(), "must be a mapping") {
		t.Errorf("a list document must be refused, got %v", err)
	}
}

// FuzzDecode feeds arbitrary bytes through the strict reader: it must
// never panic, every problem must carry its file and a line, a document
// that decodes has no duplicate key (yaml.v3's own decoder is the judge),
// and the problems of a List item are reported under its path.
func FuzzDecode(f *testing.F) {
	f.Add([]byte("apiVersion: v1\nkind: T\nspec:\n  call: x\n  index: 1\n  args: [{type: int}]\n"))
	f.Add([]byte("a: &x {b: *x}\n"))
	f.Add([]byte("---\n---\nkind: [\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := Split("fuzz.yaml", data)
		for _, e := range AsErrors("fuzz.yaml", err) {
			if e.File != "fuzz.yaml" || e.Line < 1 {
				t.Fatalf("problem without file or line: %#v", e)
			}
		}
		for _, d := range docs {
			var out testDoc
			err := d.Decode(&out)
			for _, e := range AsErrors(d.File, err) {
				if e.File != "fuzz.yaml" || e.Line < 1 {
					t.Fatalf("problem without file or line: %#v", e)
				}
				if d.Prefix != "" && !under(e.Path, d.Prefix) {
					t.Fatalf("problem of %s reported at %q", d.Prefix, e.Path)
				}
			}
			if err == nil {
				var m map[string]any
				if uerr := yamlv3.Unmarshal(d.Raw(), &m); uerr != nil && strings.Contains(uerr.Error(), "already defined") {
					t.Fatalf("decoded a document with a duplicate key: %v", uerr)
				}
			}
			var lenient testDoc
			d.DecodeLenient(&lenient)
			d.LineOf("spec.args[0].type")
		}
	})
}
