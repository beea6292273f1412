package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/vigilsec/vigil/exporter/encode"
	"github.com/vigilsec/vigil/rules"
)

func newRulesCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Develop and check detection rules offline",
		Long: `rules works with detection rules (Rego, see docs/rules.md) without a kernel:
list what a rule set holds, and evaluate it against recorded events (the JSON
lines of vigil events -o json or an export file), as the agent would.`,
	}
	cmd.AddCommand(newRulesTestCommand(g), newRulesListCommand(g))
	return cmd
}

// rulesFlags are the flags both rules commands take.
type rulesFlags struct {
	noDefaults bool
	exceptions []string
}

func (f *rulesFlags) add(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.noDefaults, "no-default-rules", false, "leave the embedded default rules out")
	cmd.Flags().StringArrayVar(&f.exceptions, "exceptions", nil, "RuleExceptions file to apply (repeatable)")
}

func (f *rulesFlags) load(ctx context.Context, paths []string) (*rules.Set, *rules.Exceptions, error) {
	cfg := rules.DefaultConfig()
	cfg.Paths, cfg.NoDefaultRules, cfg.Exceptions = paths, f.noDefaults, f.exceptions
	if !cfg.Enabled() {
		return nil, nil, &exitError{code: 2, err: errors.New("no rules: give rule files or directories, or drop --no-default-rules")}
	}
	set, exc, err := rules.Load(ctx, cfg)
	if err != nil {
		return nil, nil, &exitError{code: 1, err: err}
	}
	return set, exc, nil
}

func newRulesTestCommand(g *globals) *cobra.Command {
	var f rulesFlags
	var eventsFile string
	cmd := &cobra.Command{
		Use:   "test [RULE_FILE|DIR...] --events FILE.jsonl",
		Short: "Evaluate rules against recorded events and print the alerts",
		Long: `test evaluates the default rules and the given rule files or directories
against recorded events, one exported JSON object per line ("-" reads stdin),
and prints the alerts as JSON lines, each carrying the event that raised it.
Lines of other kinds (alerts, lost_events) are skipped. It exits 1 when a rule
does not load (every problem is printed as FILE:LINE: message) or fails on an
event, 2 on bad input.`,
		Example: `  vigil events -o json > recorded.jsonl        # on a node, while reproducing the behaviour
  vigil rules test my-rules/ --events recorded.jsonl`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if eventsFile == "" {
				return &exitError{code: 2, err: errors.New("--events: give the file of recorded events (- for stdin)")}
			}
			set, exc, err := f.load(cmd.Context(), args)
			if err != nil {
				return err
			}
			in := io.Reader(cmd.InOrStdin())
			if eventsFile != "-" {
				file, err := os.Open(eventsFile)
				if err != nil {
					return &exitError{code: 2, err: fmt.Errorf("--events: %w", err)}
				}
				defer file.Close()
				in = file
			}
			return rulesTest(cmd.Context(), set, exc, in, eventsFile, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&eventsFile, "events", "", "recorded events, one exported JSON object per line (- for stdin)")
	return cmd
}

func rulesTest(ctx context.Context, set *rules.Set, exc *rules.Exceptions, in io.Reader, name string, out, errOut io.Writer) error {
	o := rules.NewOffline(set, exc)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	w := bufio.NewWriter(out)
	defer w.Flush()
	var buf []byte
	failed := 0
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		res, err := o.Eval(ctx, line)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("%s:%d: %w", name, n, err)}
		}
		for _, re := range res.Errors {
			failed++
			fmt.Fprintf(errOut, "%s:%d: rule %s (%s) failed: %v\n", name, n, re.Rule.ID, re.Rule.File, re.Err)
		}
		for _, a := range res.Alerts {
			buf = encode.AppendJSON(buf[:0], a, res.NodeName, nil)
			w.Write(append(buf, '\n'))
		}
	}
	if err := sc.Err(); err != nil {
		return &exitError{code: 2, err: fmt.Errorf("%s: %w", name, err)}
	}
	if failed > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d rule evaluations failed", failed)}
	}
	return nil
}

func newRulesListCommand(g *globals) *cobra.Command {
	var f rulesFlags
	cmd := &cobra.Command{
		Use:   "list [RULE_FILE|DIR...]",
		Short: "List the rules a set holds: id, severity, events, name, file",
		RunE: func(cmd *cobra.Command, args []string) error {
			set, _, err := f.load(cmd.Context(), args)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSEVERITY\tEVENTS\tNAME\tFILE")
			for _, r := range set.Rules() {
				ev := make([]string, len(r.Events))
				for i, t := range r.Events {
					ev[i] = t.String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.Severity, strings.Join(ev, ","), r.Name, r.File)
			}
			return tw.Flush()
		},
	}
	f.add(cmd)
	return cmd
}
