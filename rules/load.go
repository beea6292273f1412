package rules

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Defaults are the embedded default rules, on unless --no-default-rules.
//
//go:embed defaults/*.rego
var Defaults embed.FS

// source is the text of one rule file.
type source struct{ file, text string }

// defaultSources returns the embedded library modules (lib*.rego, which
// user rules may import whether or not the default rules run) and, with
// rules, the default rules.
func defaultSources(rules bool) ([]source, error) {
	names, err := fs.Glob(Defaults, "defaults/*.rego")
	if err != nil {
		return nil, err
	}
	var out []source
	for _, n := range names {
		if !rules && !strings.HasPrefix(filepath.Base(n), "lib") {
			continue
		}
		b, err := Defaults.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out = append(out, source{"embedded:" + filepath.Base(n), string(b)})
	}
	return out, nil
}

// IsRuleFile reports whether name is a rule file: .rego, not a Rego test.
func IsRuleFile(name string) bool {
	return strings.HasSuffix(name, ".rego") && !strings.HasSuffix(name, "_test.rego")
}

// readSources reads rule files and the rule files of directories (and
// their subdirectories), in lexical order.
func readSources(paths []string) ([]source, error) {
	var out []source
	var errs []error
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("rule files: %w", err))
			continue
		}
		var files []string
		if fi.IsDir() {
			err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if !d.IsDir() && IsRuleFile(d.Name()) {
					files = append(files, path)
				}
				return nil
			})
			if err != nil {
				errs = append(errs, fmt.Errorf("rule files under %s: %w", p, err))
			}
			slices.Sort(files)
		} else {
			files = []string{p}
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			out = append(out, source{f, string(b)})
		}
	}
	return out, errors.Join(errs...)
}

func readExceptions(paths []string) (*Exceptions, error) {
	x := &Exceptions{byRule: map[string][]exception{}}
	var errs []error
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("rule exceptions: %w", err))
			continue
		}
		e, err := ParseExceptions(p, b)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		x.merge(e)
	}
	return x, errors.Join(errs...)
}

// Load reads and compiles the rules and exceptions cfg names, strictly:
// any problem in any file is an error (FILE:LINE: message), for `vigil
// rules test` and CI.
func Load(ctx context.Context, cfg Config) (*Set, *Exceptions, error) {
	srcs, err := defaultSources(!cfg.NoDefaultRules)
	if err != nil {
		return nil, nil, err
	}
	user, err := readSources(cfg.Paths)
	if err != nil {
		return nil, nil, err
	}
	srcs = append(srcs, user...)
	var rules []*Rule
	var errs []error
	for _, s := range srcs {
		r, err := ParseRule(s.file, s.text)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rules = append(rules, r)
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	set, err := Compile(ctx, rules)
	if err != nil {
		return nil, nil, err
	}
	exc, err := readExceptions(cfg.Exceptions)
	if err != nil {
		return nil, nil, err
	}
	if u := exc.unknownRules(set); len(u) > 0 {
		slices.Sort(u)
		return nil, nil, fmt.Errorf("exceptions name rules that are not loaded: %s", strings.Join(u, ", "))
	}
	return set, exc, nil
}
