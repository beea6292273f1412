package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
)

func TestApplyConfigFile(t *testing.T) {
	fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	node := fs.String("node-name", "a", "")
	size := fs.Int("process-cache-size", 1, "")
	pol := fs.StringArray("policy", nil, "")
	fs.String("config", "", "")
	if err := fs.Parse([]string{"--node-name", "from-flag"}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(p, []byte("node-name: from-file\nprocess-cache-size: 1024\npolicy: [/a, /b]\n"), 0o644)
	if err := ApplyConfigFile(p, fs); err != nil {
		t.Fatal(err)
	}
	if *node != "from-flag" || *size != 1024 || strings.Join(*pol, ",") != "/a,/b" {
		t.Errorf("node %q size %d policy %v: flags must win, the file fills the rest", *node, *size, *pol)
	}

	for _, tc := range []struct{ text, want string }{
		{"proces-cache-size: 5\n", `c.yaml:1: proces-cache-size: unknown key (did you mean "process-cache-size"?)`},
		{"process-cache-size: many\n", "c.yaml:1: process-cache-size: "},
		{"policy: {a: b}\n", "c.yaml:1: policy: expected a value or a list of values"},
		{"- a\n", "the config file must be a mapping"},
	} {
		os.WriteFile(p, []byte(tc.text), 0o644)
		err := ApplyConfigFile(p, fs)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.text, err, tc.want)
		}
	}
}

// TestApplyConfigFileStrict checks that the config file is read like every
// user file: all problems at once, each with its line.
func TestApplyConfigFileStrict(t *testing.T) {
	newFlags := func() *pflag.FlagSet {
		fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
		fs.String("node-name", "", "")
		fs.Bool("export-stdout", true, "")
		fs.StringArray("policy", nil, "")
		return fs
	}
	p := filepath.Join(t.TempDir(), "c.yaml")
	tests := []struct {
		name, text string
		want       []string
	}{
		{"duplicate key and misread booleans",
			"node-name: a\nexport-stdout: no\nnode-name: b\npolicy: [/a, on]\n",
			[]string{
				p + ":2: export-stdout: no: write true or false",
				p + ":3: node-name: duplicate key (first at line 1)",
				p + `:4: policy: on is a boolean in YAML 1.1, and --policy takes a stringArray: quote it ("on") if you mean the text`,
			}},
		{"empty file", "\n", []string{p + ":1: the file is empty"}},
		{"binary", "node-name: \x00\n", []string{p + ":1: NUL byte at column 12: this is a binary file, not YAML or JSON"}},
		{"several documents", "node-name: a\n---\nnode-name: b\n", []string{p + ":3: the config file must be one mapping of flag names to values, not several documents"}},
		{"JSON", `{"node-name": "n1", "export-stdout": false}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.WriteFile(p, []byte(tt.text), 0o644)
			err := ApplyConfigFile(p, newFlags())
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}
