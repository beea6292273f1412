package agent

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/vigilsec/vigil/internal/manifest"
)

// ApplyConfigFile sets the flags of fs from a YAML (or JSON) config file
// whose keys are the flag names without dashes (export-file:
// /var/log/vigil.json). Flags given on the command line win. The file is
// read as every user file is (package manifest): duplicate keys, unknown
// keys, YAML 1.1 booleans where they would be misread and values a flag
// refuses are errors naming the file, line and key, all of them at once. It runs once, before the agent
// starts, so an error stops the start-up.
func ApplyConfigFile(path string, fs *pflag.FlagSet) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	docs, err := manifest.Split(path, data)
	problems := manifest.AsErrors(path, err)
	for _, p := range problems {
		if rest, ok := strings.CutPrefix(p.Msg, "a document must be a mapping with apiVersion and kind"); ok {
			p.Msg = "the config file must be a mapping of flag names to values" + rest
		}
	}
	if len(docs) > 1 {
		problems = append(problems, &manifest.Error{File: path, Line: docs[1].Line, Msg: "the config file must be one mapping of flag names to values, not several documents"})
	}
	if len(problems) > 0 || len(docs) == 0 {
		return problems.Err()
	}
	entries, errs := docs[0].Flat()
	problems = append(problems, errs...)
	for _, e := range entries {
		f := fs.Lookup(e.Key)
		if f == nil || e.Key == "config" || e.Key == "cleanup-pins" {
			problems = append(problems, &manifest.Error{File: path, Line: e.Line, Path: e.Key, Msg: "unknown key" + suggestFlag(fs, e.Key)})
			continue
		}
		isBool := f.Value.Type() == "bool"
		misread := false
		for _, v := range e.Values {
			switch {
			case isBool && v.YAML11Bool:
				problems = append(problems, &manifest.Error{File: path, Line: v.Line, Path: e.Key, Msg: fmt.Sprintf("%s: write true or false", v.Text)})
				misread = true
			case !isBool && (v.Bool || v.YAML11Bool):
				problems = append(problems, &manifest.Error{File: path, Line: v.Line, Path: e.Key,
					Msg: fmt.Sprintf("%s is a boolean in YAML 1.1, and --%s takes a %s: quote it (%q) if you mean the text", v.Text, e.Key, f.Value.Type(), v.Text)})
				misread = true
			}
		}
		if f.Changed || misread {
			continue // the command line wins
		}
		for _, v := range e.Values {
			if err := f.Value.Set(v.Text); err != nil {
				problems = append(problems, &manifest.Error{File: path, Line: v.Line, Path: e.Key, Msg: err.Error()})
			}
		}
	}
	problems.Sort()
	return problems.Err()
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
