package manifest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

type labelDoc struct {
	TypeMeta `json:",inline"`
	Metadata struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Mode     string            `json:"mode"`
		Action   string            `json:"action"`
		Values   []string          `json:"values"`
		Selector map[string]string `json:"matchLabels"`
		Enabled  bool              `json:"enabled"`
		Port     int               `json:"port"`
		Any      any               `json:"any"`
	} `json:"spec"`
}

// problems returns every problem of a file, the file's and its documents',
// as the commands print them.
func problems(t *testing.T, src string) []string {
	t.Helper()
	docs, err := Split("f.yaml", []byte(src))
	var got []string
	for _, e := range AsErrors("f.yaml", err) {
		got = append(got, e.Error())
	}
	for _, d := range docs {
		var out labelDoc
		for _, e := range AsErrors(d.File, d.Decode(&out)) {
			got = append(got, e.Error())
		}
	}
	return got
}

func TestStrictReading(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"duplicate nested key",
			"apiVersion: v1\nkind: T\nmetadata:\n  name: a\nspec:\n  mode: monitor\n  action: Post\n  action: Sigkill\n  mode: enforce\n",
			[]string{
				"f.yaml:8: spec.action: duplicate key (first at line 7)",
				"f.yaml:9: spec.mode: duplicate key (first at line 6)",
			}},
		{"duplicate metadata.name",
			"apiVersion: v1\nkind: T\nmetadata:\n  name: a\n  name: b\n",
			[]string{"f.yaml:5: metadata.name: duplicate key (first at line 4)"}},
		{"duplicate key in a list item and in a label map",
			"apiVersion: v1\nkind: T\nmetadata:\n  labels:\n    app: a\n    app: b\nspec:\n  any:\n  - {x: 1, x: 2}\n",
			[]string{
				"f.yaml:6: metadata.labels.app: duplicate key (first at line 5)",
				"f.yaml:9: spec.any[0].x: duplicate key (first at line 9)",
			}},
		{"duplicate and unknown reported together",
			"apiVersion: v1\nkind: T\nspec:\n  mode: a\n  mode: b\n  mdoe: c\n",
			[]string{
				"f.yaml:5: spec.mode: duplicate key (first at line 4)",
				`f.yaml:6: spec.mdoe: unknown field "mdoe" (did you mean "mode"?)`,
			}},
		{"YAML 1.1 boolean label value",
			"apiVersion: v1\nkind: T\nmetadata:\n  labels:\n    flag: yes\n",
			[]string{`f.yaml:5: metadata.labels.flag: yes is the boolean true in YAML 1.1 (kubectl, the API server), not a string: quote it ("yes")`}},
		{"YAML 1.1 boolean label key",
			"apiVersion: v1\nkind: T\nspec:\n  matchLabels:\n    on: x\n",
			[]string{`f.yaml:5: spec.matchLabels.on: on is the boolean true in YAML 1.1 (kubectl, the API server), not a string: quote it ("on")`}},
		{"boolean where a string is expected",
			"apiVersion: v1\nkind: T\nspec:\n  mode: n\n  values: [a, off, true]\n",
			[]string{
				`f.yaml:4: spec.mode: n is the boolean false in YAML 1.1 (kubectl, the API server), not a string: quote it ("n")`,
				`f.yaml:5: spec.values[1]: off is the boolean false in YAML 1.1 (kubectl, the API server), not a string: quote it ("off")`,
				`f.yaml:5: spec.values[2]: true is the boolean true in YAML 1.1 (kubectl, the API server), not a string: quote it ("true")`,
			}},
		{"number in a name or label",
			"apiVersion: v1\nkind: T\nmetadata:\n  name: 42\n  labels:\n    version: 2\n",
			[]string{
				`f.yaml:4: metadata.name: 42 is a number; the API server accepts only strings here: quote it ("42")`,
				`f.yaml:6: metadata.labels.version: 2 is a number; the API server accepts only strings here: quote it ("2")`,
			}},
		{"number whose spelling YAML 1.1 changes",
			"apiVersion: v1\nkind: T\nspec:\n  values: [80, 1.10, 010, 0x1F, 1e3, '1.10']\n",
			[]string{
				`f.yaml:4: spec.values[1]: 1.10 is the number 1.1 in YAML 1.1 (kubectl, Tetragon), not the string "1.10": quote it ("1.10")`,
				`f.yaml:4: spec.values[2]: 010 is the number 8 in YAML 1.1 (kubectl, Tetragon), not the string "010": quote it ("010")`,
				`f.yaml:4: spec.values[3]: 0x1F is the number 31 in YAML 1.1 (kubectl, Tetragon), not the string "0x1F": quote it ("0x1F")`,
				`f.yaml:4: spec.values[4]: 1e3 is the number 1000 in YAML 1.1 (kubectl, Tetragon), not the string "1e3": quote it ("1e3")`,
			}},
		{"null label value",
			"apiVersion: v1\nkind: T\nmetadata:\n  labels:\n    app: ~\n",
			[]string{`f.yaml:5: metadata.labels.app: null where a string is expected: quote it ("" for an empty value), or remove the entry`}},
		{"bool field spelt the YAML 1.1 way",
			"apiVersion: v1\nkind: T\nspec:\n  enabled: yes\n",
			[]string{`f.yaml:4: spec.enabled: expected true or false, got "yes" (YAML 1.1 reads yes as true; write true)`}},
		{"read-only fields accepted",
			"apiVersion: v1\nkind: T\nmetadata:\n  name: a\n  uid: 1b2c\n  resourceVersion: \"42\"\n  generation: 3\n  creationTimestamp: null\n  managedFields:\n  - manager: kubectl\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: |\n      {\"kind\":\"T\"}\nstatus: {}\n",
			nil},
		{"annotations are still checked",
			"apiVersion: v1\nkind: T\nmetadata:\n  annotations:\n    a: yes\n",
			[]string{`f.yaml:5: metadata.annotations.a: yes is the boolean true in YAML 1.1 (kubectl, the API server), not a string: quote it ("yes")`}},
		{"JSON document",
			`{"apiVersion": "v1", "kind": "T", "metadata": {"name": "a", "name": "b"}, "spec": {"mode": "x", "port": 80}}`,
			[]string{"f.yaml:1: metadata.name: duplicate key (first at line 1)"}},
		{"List items", "apiVersion: v1\nkind: List\nmetadata:\n  resourceVersion: \"\"\nitems:\n- apiVersion: v1\n  kind: T\n  metadata: {name: a}\n- apiVersion: v1\n  kind: T\n  spec:\n    mode: a\n    mode: b\n    bogus: 1\n",
			[]string{
				"f.yaml:13: items[1].spec.mode: duplicate key (first at line 12)",
				`f.yaml:14: items[1].spec.bogus: unknown field "bogus"`,
			}},
		{"List wrapper problems", "apiVersion: v1\nkind: List\nfoo: 1\nitems:\n- 3\n- apiVersion: v1\n  kind: List\n",
			[]string{
				`f.yaml:3: foo: unknown field "foo" of a List (want apiVersion, kind, metadata and items)`,
				`f.yaml:5: items[0]: an item must be a mapping with apiVersion and kind, got 3`,
				`f.yaml:7: items[1].kind: a List inside a List is not supported`,
			}},
		{"recursive alias", "apiVersion: v1\nkind: T\nspec:\n  any: &x {b: *x}\n",
			[]string{`f.yaml:4: spec.any.b: alias *x refers to a value that contains it`}},
		{"aliases", "apiVersion: v1\nkind: T\nmetadata:\n  labels: &l {app: a}\nspec:\n  matchLabels: *l\n  mode: &m x\n  action: *m\n  any: [*l, *l]\n",
			nil},
		{"merge key", "apiVersion: v1\nkind: T\nbase: &b {mode: x}\nspec:\n  <<: *b\n",
			[]string{`f.yaml:3: base: unknown field "base"`, `f.yaml:5: spec: merge keys (<<) are not supported: write the fields out`}},
		{"empty", "  \n\n", []string{"f.yaml:1: the file is empty"}},
		{"NUL byte", "apiVersion: v1\nkind: T\x00\n", []string{"f.yaml:2: NUL byte at column 8: this is a binary file, not YAML or JSON"}},
		{"binary", "\x7fELF\x02\x01", []string{"f.yaml:1: control character 0x7f at column 1: this is not a YAML or JSON text file"}},
		{"invalid UTF-8", "apiVersion: v1\nkind: \xff\n", []string{"f.yaml:2: invalid UTF-8 (byte 0xff) at column 7: this is a binary file, or not UTF-8 text"}},
		{"UTF-16", "\xff\xfea\x00", []string{"f.yaml:1: the file is UTF-16 text; save it as UTF-8"}},
		{"syntax error keeps earlier documents", "apiVersion: v1\nkind: T\nspec: {mode: a, mode: b}\n---\nkind: [\n",
			[]string{"f.yaml:5: invalid YAML: did not find expected node content", "f.yaml:3: spec.mode: duplicate key (first at line 3)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, problems(t, tt.src)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeKeepsStrings(t *testing.T) {
	src := "apiVersion: v1\nkind: T\nmetadata:\n  name: a\n  labels: {version: \"1.10\", flag: \"yes\"}\nspec:\n  values: [80, \"010\", 1.5, a b]\n  port: 0x50\n  any: {n: 12345678901234567, f: 1.5, s: x}\n"
	docs, err := Split("f.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	var d labelDoc
	if err := docs[0].Decode(&d); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"version": "1.10", "flag": "yes"}, d.Metadata.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"80", "010", "1.5", "a b"}, d.Spec.Values); diff != "" {
		t.Errorf("values (-want +got):\n%s", diff)
	}
	if d.Spec.Port != 80 {
		t.Errorf("port = %d, want 80", d.Spec.Port)
	}
	want := map[string]any{"n": int64(12345678901234567), "f": 1.5, "s": "x"}
	if diff := cmp.Diff(want, d.Spec.Any); diff != "" {
		t.Errorf("any (-want +got):\n%s", diff)
	}
}

func TestListItems(t *testing.T) {
	src := "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicyList\nitems:\n- metadata: {name: a}\n- apiVersion: v1\n  kind: Other\n  metadata: {name: b}\n---\napiVersion: v1\nkind: T\nmetadata: {name: c}\n"
	docs, err := Split("f.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Index            int
		Line             int
		APIVersion, Kind string
		Name, Prefix     string
	}
	var got []row
	for _, d := range docs {
		got = append(got, row{d.Index, d.Line, d.APIVersion, d.Kind, d.Name, d.Prefix})
	}
	want := []row{
		{0, 4, "networking.k8s.io/v1", "NetworkPolicy", "a", "items[0]"},
		{1, 5, "v1", "Other", "b", "items[1]"},
		{2, 9, "v1", "T", "c", ""},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("documents (-want +got):\n%s", diff)
	}
	if e := docs[1].Errorf("metadata.name", "x"); e.Error() != "f.yaml:7: items[1].metadata.name: x" {
		t.Errorf("Errorf = %q", e.Error())
	}
}

// TestYAML11AgreesWithSigsYAML checks the classification of plain scalars
// against what sigs.k8s.io/yaml (kubectl's reader) puts in a string field.
func TestYAML11AgreesWithSigsYAML(t *testing.T) {
	for _, s := range []string{"yes", "No", "ON", "off", "y", "N", "true", "False", "80", "-1", "+1", "1.10", "1.5",
		"010", "0x1F", "0o17", "0b101", "1e3", "1_000", ".5", "1.", "3.14159265358979", "abc", "1.2.3", "v1", "e3",
		"0", "00", "-", "--", ".", "..", "1-2", "12:30", "0xZ", ".inf", "-.inf", ".nan", "1e400", "99999999999999999999", "18446744073709551615"} {
		var v struct {
			S string `json:"s"`
		}
		sigsErr := yaml.Unmarshal([]byte("s: "+s), &v)
		kind, text := yaml11(s)
		switch {
		case sigsErr != nil:
			continue // kubectl refuses it too
		case kind == "":
			if v.S != s {
				t.Errorf("%s: classified as a string, but sigs.k8s.io/yaml reads %q", s, v.S)
			}
		case text != v.S:
			t.Errorf("%s: classified as %s %q, sigs.k8s.io/yaml reads %q", s, kind, text, v.S)
		}
	}
}

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"a.yaml", "b.json", "c.yml", "d.txt", ".hidden.yaml", "sub/e.JSON", ".git/f.yaml"} {
		p := filepath.Join(dir, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("apiVersion: v1\nkind: T\n"), 0o644)
	}
	got, err := Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		got[i], _ = filepath.Rel(dir, got[i])
	}
	if diff := cmp.Diff([]string{"a.yaml", "b.json", "c.yml", "sub/e.JSON"}, got); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}
