package rules

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

func FuzzParseRule(f *testing.F) {
	f.Add(rule("a", goodMeta, goodAlert))
	b, _ := Defaults.ReadFile("defaults/reverse_shell.rego")
	f.Add(string(b))
	f.Add("package vigil.lib.x\n\nf(x) := x\n")
	f.Fuzz(func(t *testing.T, src string) {
		r, err := ParseRule("f.rego", src)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.rego") {
				t.Errorf("error does not name the file: %v", err)
			}
			return
		}
		if r.ID == "" || (!r.lib && (len(r.Events) == 0 || r.Severity == "")) {
			t.Errorf("accepted a rule without metadata: %+v", r)
		}
	})
}

func FuzzParseExceptions(f *testing.F) {
	f.Add([]byte("apiVersion: vigil.dev/v1alpha1\nkind: RuleExceptions\nmetadata: {name: p}\nspec:\n  exceptions:\n  - rules: [A]\n    binaries: [/bin/*]\n"))
	f.Add([]byte("kind: RuleExceptions\n---\n- a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		x, err := ParseExceptions("x.yaml", data)
		if err == nil && x == nil {
			t.Error("no exceptions and no error")
		}
	})
}

// The rule input parser accepts exactly the JSON objects encoding/json
// accepts, and reads the same values.
func FuzzParseInput(f *testing.F) {
	for _, name := range []string{"process_exec", "flow", "process_kprobe", "alert"} {
		b, _ := os.ReadFile("../exporter/encode/testdata/" + name + ".golden")
		f.Add(bytes.TrimSpace(b))
	}
	f.Add([]byte(`{"a":"\u00e9\n","b":[1,2.5e3,-0,true,null,{}],"c":{"process":{"x":1}}}`))
	f.Add([]byte(`{"a":1}x`))
	f.Add([]byte(`{"k\\n":1,"o":{"k\n":2,"k\"":3,"k\\\"":4}}`))
	f.Add([]byte(`{"process":{"exec_id":"a","s":"x\"}"},"parent":{"exec_id":"a","s":"x\\"}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		p := newInputParser(4)
		v, _, err := p.parse(line)
		var want any
		jerr := json.Unmarshal(line, &want)
		_, isObj := want.(map[string]any)
		if jerr != nil || !isObj {
			if err == nil {
				t.Fatalf("accepted %q, which is not a JSON object", line)
			}
			return
		}
		if err != nil {
			// Duplicate keys, which encoding/json accepts (last wins), are
			// the only disagreement allowed.
			return
		}
		w, err := ast.InterfaceToValue(want)
		if err != nil {
			return
		}
		if v.Compare(w) != 0 {
			t.Fatalf("parsed %q as %v, encoding/json reads %v", line, v, w)
		}
		// A second parse, through the process cache, reads the same.
		v2, _, err := p.parse(line)
		if err != nil || v2.Compare(v) != 0 {
			t.Fatalf("second parse of %q: %v, %v", line, v2, err)
		}
	})
}
