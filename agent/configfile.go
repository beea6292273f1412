package agent

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/vigilsec/vigil/internal/manifest"
	yamlv3 "go.yaml.in/yaml/v3"
)

// ApplyConfigFile sets the flags of fs from a YAML config file whose keys are
// the flag names without dashes (export-file: /var/log/vigil.json). Flags
// given on the command line win. Unknown keys and values a flag refuses are
// errors naming the file, line and key. It runs once, before the agent
// starts, so an error stops the start-up.
func ApplyConfigFile(path string, fs *pflag.FlagSet) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%s: invalid YAML: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	if root.Kind != yamlv3.MappingNode {
		return fmt.Errorf("%s:%d: the config file must be a mapping of flag names to values", path, root.Line)
	}

	var problems []string
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		f := fs.Lookup(k.Value)
		if f == nil || k.Value == "config" {
			problems = append(problems, fmt.Sprintf("%s:%d: %s: unknown key%s", path, k.Line, k.Value, suggestFlag(fs, k.Value)))
			continue
		}
		var values []*yamlv3.Node
		switch v.Kind {
		case yamlv3.ScalarNode:
			values = []*yamlv3.Node{v}
		case yamlv3.SequenceNode:
			values = v.Content
		default:
			problems = append(problems, fmt.Sprintf("%s:%d: %s: expected a value or a list of values", path, v.Line, k.Value))
			continue
		}
		if f.Changed {
			continue // the command line wins
		}
		for _, val := range values {
			if val.Kind != yamlv3.ScalarNode {
				problems = append(problems, fmt.Sprintf("%s:%d: %s: list items must be plain values", path, val.Line, k.Value))
				continue
			}
			if err := f.Value.Set(val.Value); err != nil {
				problems = append(problems, fmt.Sprintf("%s:%d: %s: %v", path, val.Line, k.Value, err))
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "\n"))
	}
	return nil
}

func suggestFlag(fs *pflag.FlagSet, key string) string {
	var names []string
	fs.VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	sort.Strings(names)
	if s := manifest.Suggest(strings.ReplaceAll(key, "_", "-"), names); s != "" {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	return ""
}
