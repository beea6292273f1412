package main

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/vigilsec/vigil/agent"
	"github.com/vigilsec/vigil/event"
)

// eventsConfig is the configuration of `vigil events`: tetra getevents's
// flags, and Vigil's allow and deny lines.
type eventsConfig struct {
	Socket     string
	Output     string // json, compact or text
	Color      string // auto, always or never
	Namespaces []string
	Pods       []string // regular expressions
	Processes  []string // regular expressions on the binary
	Policies   []string
	EventTypes []string
	Host       bool
	Timestamps bool
	Allow      []string
	Deny       []string
}

// tetragonOnlyEvents are Tetragon event types Vigil does not produce.
var tetragonOnlyEvents = map[string]bool{
	"PROCESS_LOADER": true, "PROCESS_THROTTLE": true,
	"TEST": true, "UNDEF": true,
}

// eventTypeNames lists the valid --event-types values.
func eventTypeNames() []string {
	var out []string
	for _, t := range event.Types() {
		out = append(out, strings.ToUpper(t.String()))
	}
	return out
}

// Validate checks the flags; its errors name the flag and list the valid
// values.
func (c *eventsConfig) Validate() error {
	switch c.Output {
	case "json", "compact", "text":
	default:
		return fmt.Errorf("--output: unknown format %q (want json, compact or text)", c.Output)
	}
	switch c.Color {
	case "auto", "always", "never":
	default:
		return fmt.Errorf("--color: unknown value %q (want auto, always or never)", c.Color)
	}
	for _, name := range c.EventTypes {
		up := strings.ToUpper(strings.TrimSpace(name))
		if tetragonOnlyEvents[up] {
			return fmt.Errorf("--event-types: Vigil produces no %s events (valid: %s)", up, strings.Join(eventTypeNames(), ", "))
		}
		if _, ok := event.ParseType(strings.ToLower(up)); !ok {
			return fmt.Errorf("--event-types: unknown event type %q (valid: %s)", name, strings.Join(eventTypeNames(), ", "))
		}
	}
	for _, f := range []struct {
		flag string
		res  []string
	}{{"--pod", c.Pods}, {"--process", c.Processes}} {
		for _, re := range f.res {
			if _, err := regexp.Compile(re); err != nil {
				return fmt.Errorf("%s %q: not a regular expression: %w", f.flag, re, err)
			}
		}
	}
	return nil
}

// requireLine is the filter line (the export filters' syntax) that the
// getevents flags make, or "" when none is set. The agent applies it to
// every event but the lost-event notices. Values within a flag are
// alternatives; different flags must all match; --host adds host
// processes to --namespace (alone, it selects them).
func (c *eventsConfig) requireLine() string {
	f := map[string][]string{}
	ns := slices.Clone(c.Namespaces)
	if c.Host {
		ns = append(ns, "")
	}
	if len(ns) > 0 {
		f["namespace"] = ns
	}
	if len(c.Pods) > 0 {
		f["pod_regex"] = c.Pods
	}
	if len(c.Processes) > 0 {
		f["binary_regex"] = c.Processes
	}
	if len(c.Policies) > 0 {
		f["policy_names"] = c.Policies
	}
	for _, t := range c.EventTypes {
		f["event_set"] = append(f["event_set"], strings.ToUpper(strings.TrimSpace(t)))
	}
	if len(f) == 0 {
		return ""
	}
	b, _ := json.Marshal(f)
	return string(b)
}

func newEventsCommand(g *globals) *cobra.Command {
	cfg := &eventsConfig{}
	// tetra's plural spellings of the same flags.
	var namespaces, pods, processes []string
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Follow the running agent's events (tetra getevents's flags)",
		Long: `events streams the running agent's events as they happen: as JSON lines
(-o json, the default), as one readable line per event (-o compact, like
tetra getevents -o compact), or as Vigil's one-line summaries with pid
(-o text).

The filters are tetra getevents's, with its meanings: each takes a
comma-separated list and may be repeated; values of one flag are
alternatives, different flags must all match. The agent filters before
sending, and notices of lost events always come through.

  vigil events -o compact --namespace prod --pod 'web-.*'
  vigil events --process curl,wget --event-types PROCESS_EXEC,PROCESS_EXIT
  vigil events --policy-names file-guard --host -o compact --timestamps

--allow and --deny take filter lines in the syntax of the export allow and
deny lists (see docs/export.md), for example
  vigil events --allow '{"event_set":["PROCESS_EXEC"],"namespace":["prod"]}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Namespaces = append(cfg.Namespaces, namespaces...)
			cfg.Pods = append(cfg.Pods, pods...)
			cfg.Processes = append(cfg.Processes, processes...)
			if err := cfg.Validate(); err != nil {
				return &exitError{code: 2, err: err}
			}
			opts := agent.EventsOptions{Format: cfg.Output, Timestamps: cfg.Timestamps,
				Allow: cfg.Allow, Deny: cfg.Deny, Require: cfg.requireLine()}
			switch cfg.Color {
			case "auto":
				opts.Color = cfg.Output != "json" && term.IsTerminal(int(os.Stdout.Fd()))
			case "always":
				opts.Color = cfg.Output != "json"
			}
			if err := agent.NewClient(cfg.Socket).Events(cmd.Context(), opts, cmd.OutOrStdout()); err != nil {
				return &exitError{code: 1, err: err}
			}
			return nil
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: 2, err: fmt.Errorf("%w (see vigil events --help)", err)}
	})
	fl := cmd.Flags()
	fl.StringVar(&cfg.Socket, "socket", defaultSocket, "the agent's control socket")
	fl.StringVarP(&cfg.Output, "output", "o", "json", "output format: json, compact (one readable line per event) or text")
	fl.StringVar(&cfg.Color, "color", "auto", "colour compact and text output: auto, always or never")
	fl.StringSliceVarP(&cfg.Namespaces, "namespace", "n", nil, "only events of pods in these Kubernetes namespaces")
	fl.StringSliceVar(&namespaces, "namespaces", nil, "same as --namespace")
	fl.StringSliceVar(&cfg.Pods, "pod", nil, "only events of pods whose name matches one of these regular expressions")
	fl.StringSliceVar(&pods, "pods", nil, "same as --pod")
	fl.StringSliceVar(&cfg.Processes, "process", nil, "only events of processes whose binary matches one of these regular expressions")
	fl.StringSliceVar(&processes, "processes", nil, "same as --process")
	fl.StringSliceVar(&cfg.Policies, "policy-names", nil, "only events of these tracing policies (and network policies, rules of alerts)")
	fl.StringSliceVarP(&cfg.EventTypes, "event-types", "e", nil, "only events of these types: "+strings.Join(eventTypeNames(), ", "))
	fl.BoolVar(&cfg.Host, "host", false, "host processes (no pod); with --namespace, in addition to those namespaces")
	fl.BoolVar(&cfg.Timestamps, "timestamps", false, "start compact lines with the event's time (JSON lines always have it)")
	fl.StringArrayVar(&cfg.Allow, "allow", nil, "allow filter line (JSON), repeatable; lines are ORed")
	fl.StringArrayVar(&cfg.Deny, "deny", nil, "deny filter line (JSON), repeatable; deny wins")
	for _, name := range []string{"namespaces", "pods", "processes"} {
		fl.MarkHidden(name)
	}
	return cmd
}
