package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigilsec/vigil/agent"
	"github.com/vigilsec/vigil/internal/buildinfo"
)

func newStatusCommand(g *globals) *cobra.Command {
	var socket, output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "The running agent's health: kernel features in use, sensors, policies, ring buffer and export",
		Long: `status asks the running agent for its state: its version and uptime, the
kernel and the mechanism each hook kind uses on it (the probe results), the
sensors attached, the policies and their state, the ring buffer (records
read, lost when it was full) and the export (events by type, losses by
reason and sink, how full each sink's queue is, live tails).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return &exitError{code: 2, err: fmt.Errorf("--output: unknown format %q (want text or json)", output)}
			}
			st, err := agent.NewClient(socket).Status(cmd.Context())
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			return printStatus(cmd.OutOrStdout(), st)
		},
	}
	cmd.Flags().StringVar(&socket, "socket", defaultSocket, "the agent's control socket")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func printStatus(w io.Writer, st *agent.Status) error {
	ready := "ready"
	if !st.Ready {
		ready = "not ready"
	}
	fmt.Fprintf(w, "Agent:     vigil %s (commit %s, %s) on node %s, up %s, %s\n", st.Build.Version, st.Build.Commit, st.Build.Go, st.Node, st.Uptime, ready)
	k := st.Kernel
	fmt.Fprintf(w, "Kernel:    %s (BTF %s, lockdown %s, bpf in the LSM list %s)\n", k.Release, yesNo(k.BTF), orNone(k.Lockdown), yesNo(k.BPFLSM))
	var ok, missing []string
	for _, f := range st.Features {
		if f.OK {
			ok = append(ok, f.Name)
		} else {
			missing = append(missing, f.Name)
		}
	}
	fmt.Fprintf(w, "Features:  %s\n", strings.Join(ok, " "))
	if len(missing) > 0 {
		fmt.Fprintf(w, "Missing:   %s\n", strings.Join(missing, " "))
	}

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "\nSENSOR\tMECHANISM\tDETAIL\n")
	for _, s := range st.Sensors {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, dash(s.Mechanism), s.Detail)
	}
	fmt.Fprintf(tw, "\nHOOK\tACTION\tMECHANISM\tDETAIL\n")
	for _, p := range st.Hooks {
		detail := p.Detail
		if !p.Available() {
			detail = p.Reason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Hook, p.Action, p.Mechanism, detail)
	}
	tw.Flush()

	var states []string
	for s, n := range st.PolicyStates {
		states = append(states, fmt.Sprintf("%d %s", n, s))
	}
	sort.Strings(states)
	fmt.Fprintf(w, "\nPolicies:  %s\n", dash(strings.Join(states, ", ")))
	if len(st.Policies) > 0 {
		printPolicyList(w, st.Policies)
	}

	r := st.Ring
	fmt.Fprintf(w, "\nRing buffer: %d MiB, %d records read, %d lost (full), %d undecodable\n", r.SizeBytes>>20, r.Records, r.Lost, r.Undecodable)
	var types []string
	for t, n := range st.Export.Events {
		types = append(types, fmt.Sprintf("%s %d", t, n))
	}
	sort.Strings(types)
	fmt.Fprintf(w, "Exported:  %s\n", dash(strings.Join(types, ", ")))
	var lost []string
	for _, l := range st.Export.Lost {
		s := fmt.Sprintf("%s %d", l.Reason, l.Count)
		if l.Sink != "" {
			s = fmt.Sprintf("%s (sink %s) %d", l.Reason, l.Sink, l.Count)
		}
		lost = append(lost, s)
	}
	fmt.Fprintf(w, "Lost:      %s\n", orNothing(strings.Join(lost, ", ")))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "\nSINK\tQUEUED LINES\tQUEUED BYTES\tQUEUE FILL\n")
	for _, s := range st.Export.Sinks {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f%% of %d MiB\n", s.Name, s.QueuedLines, s.QueuedBytes, 100*s.Fill, s.CapacityBytes>>20)
	}
	tw.Flush()
	fmt.Fprintf(w, "Live tails: %d connected, %d lines dropped\n", st.Export.Tails.Connected, st.Export.Tails.LinesDropped)
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orNothing(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

// versionReport is what `vigil version -o json` prints.
type versionReport struct {
	Client buildinfo.Info  `json:"client"`
	Agent  *buildinfo.Info `json:"agent,omitempty"`
	// AgentError says why the agent's version is missing.
	AgentError string `json:"agent_error,omitempty"`
}

func newVersionCommand(g *globals) *cobra.Command {
	var socket, output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, Go release and BPF object hashes (and the running agent's)",
		Long: `version prints what this binary was built from: the version and commit
(set by make build; "dev" otherwise), the Go release, and the SHA-256 of each
embedded BPF object. When an agent answers on --socket, its version follows;
the command works without one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return &exitError{code: 2, err: fmt.Errorf("--output: unknown format %q (want text or json)", output)}
			}
			rep := versionReport{Client: buildinfo.Get()}
			ctx, cancel := context.WithTimeout(cmd.Context(), 3*time.Second)
			defer cancel()
			if st, err := agent.NewClient(socket).Status(ctx); err == nil {
				rep.Agent = &st.Build
			} else {
				rep.AgentError = err.Error()
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			printVersion(cmd.OutOrStdout(), rep)
			return nil
		},
	}
	cmd.Flags().StringVar(&socket, "socket", defaultSocket, "the agent's control socket")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func printVersion(w io.Writer, rep versionReport) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	c := rep.Client
	fmt.Fprintf(tw, "vigil\t%s\n", c.Version)
	fmt.Fprintf(tw, "commit\t%s\n", c.Commit)
	fmt.Fprintf(tw, "go\t%s\n", c.Go)
	for _, o := range c.BPFObjects {
		fmt.Fprintf(tw, "bpf\t%s sha256:%s\n", o.Name, o.SHA256)
	}
	switch a := rep.Agent; {
	case a == nil:
		fmt.Fprintf(tw, "agent\tnot reachable: %s\n", rep.AgentError)
	default:
		same := "same BPF objects"
		if !sameObjects(c, *a) {
			same = "different BPF objects: run vigil version -o json to compare"
		}
		fmt.Fprintf(tw, "agent\t%s (commit %s, %s; %s)\n", a.Version, a.Commit, a.Go, same)
	}
	tw.Flush()
}

func sameObjects(a, b buildinfo.Info) bool {
	if len(a.BPFObjects) != len(b.BPFObjects) {
		return false
	}
	for i := range a.BPFObjects {
		if a.BPFObjects[i] != b.BPFObjects[i] {
			return false
		}
	}
	return true
}
