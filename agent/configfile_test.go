package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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
