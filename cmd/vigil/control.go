package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/vigilsec/vigil/agent"
)

const defaultSocket = "/run/vigil/vigil.sock"

func newPolicyListCommand(g *globals) *cobra.Command {
	var socket, output string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the running agent's policies: state, mode, hooks and events",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			list, err := agent.NewClient(socket).Policies(cmd.Context())
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			switch output {
			case "json":
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(list)
			case "text":
				return printPolicyList(cmd.OutOrStdout(), list)
			}
			return &exitError{code: 2, err: fmt.Errorf("--output: unknown format %q (want text or json)", output)}
		},
	}
	cmd.Flags().StringVar(&socket, "socket", defaultSocket, "the agent's control socket")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func printPolicyList(w io.Writer, list []agent.PolicyStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tMODE\tEVENTS\tHOOKS\tSOURCE")
	for _, p := range list {
		name := p.Name
		if p.Namespace != "" {
			name = p.Namespace + "/" + p.Name
		}
		var hooks []string
		for _, h := range p.Hooks {
			hooks = append(hooks, fmt.Sprintf("%s:%s(%s)", h.Kind, h.Target, h.Mechanism))
		}
		mode := p.Mode
		if mode == "" {
			mode = "-"
		}
		source := p.Source
		if p.Runtime {
			source += " (runtime only)"
		}
		if len(hooks) == 0 {
			hooks = []string{"-"}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", name, p.State, mode, p.Events, strings.Join(hooks, " "), source)
		if p.Error != "" {
			for _, line := range strings.Split(p.Error, "\n") {
				fmt.Fprintf(tw, "  error: %s\n", line)
			}
		}
	}
	return tw.Flush()
}

func newPolicyModeCommand(g *globals) *cobra.Command {
	var socket string
	cmd := &cobra.Command{
		Use:   "mode NAME enforce|monitor",
		Short: "Switch a loaded policy between enforce and monitor, without reloading it",
		Long: `mode switches a policy of the running agent live. In monitor mode, Sigkill,
Signal and Override are not carried out; events say what would have been
done. The change takes effect on the next matching call.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[1] != "enforce" && args[1] != "monitor" {
				return &exitError{code: 2, err: fmt.Errorf("unknown mode %q: want enforce or monitor", args[1])}
			}
			if err := agent.NewClient(socket).SetMode(cmd.Context(), args[0], args[1]); err != nil {
				return &exitError{code: 1, err: err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", args[0], args[1])
			return nil
		},
	}
	cmd.Flags().StringVar(&socket, "socket", defaultSocket, "the agent's control socket")
	return cmd
}
