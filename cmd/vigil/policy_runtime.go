package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/vigilsec/vigil/agent"
)

// The commands that change the running agent's tracing policies, as
// tetra tracingpolicy add | delete | enable | disable do.

func newPolicyAddCommand(g *globals) *cobra.Command {
	var socket string
	cmd := &cobra.Command{
		Use:   "add FILE",
		Short: "Validate a policy file, then load its policies into the running agent (runtime only)",
		Long: `add checks FILE as vigil policy validate does (against this kernel), and
prints the same FILE:LINE: field.path: message lines when anything is wrong;
then the agent checks it again, against its kernel and the policies it has,
and loads every policy of the file, or none: a problem anywhere, a name in
use or a policy that fails to load leaves the agent as it was.

Added policies live in the agent only: vigil policy list shows their source
as cli:FILE (runtime only); they are gone when the agent restarts. To keep a
policy, put its file in a policy directory the agent watches (--policy).
vigil policy delete NAME removes an added policy.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := args[0]
			data, err := os.ReadFile(file)
			if err != nil {
				var pe *os.PathError
				if errors.As(err, &pe) {
					err = pe.Err
				}
				return &exitError{code: 1, err: fmt.Errorf("%s: %w", file, err)}
			}
			kernel, err := loadKernel(&validateConfig{}, g.log)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			var report bytes.Buffer
			if _, ok := validateFile(&report, file, kernel); !ok {
				io.Copy(cmd.OutOrStdout(), &report)
				return &exitError{code: 1, err: fmt.Errorf("%s: not valid; nothing was loaded", file)}
			}
			abs, err := filepath.Abs(file)
			if err != nil {
				abs = file
			}
			res, err := agent.NewClient(socket).AddPolicies(cmd.Context(), abs, data)
			if err != nil {
				var re *agent.RequestError
				if errors.As(err, &re) {
					printLines(cmd.OutOrStdout(), re.Warnings, re.Problems)
				}
				return &exitError{code: 1, err: err}
			}
			printLines(cmd.OutOrStdout(), res.Warnings)
			for _, name := range res.Policies {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: added (runtime only: gone when the agent restarts)\n", name)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&socket, "socket", defaultSocket, "the agent's control socket")
	return cmd
}

func printLines(w io.Writer, lists ...[]string) {
	for _, l := range lists {
		for _, s := range l {
			fmt.Fprintln(w, s)
		}
	}
}

func newPolicyDeleteCommand(g *globals) *cobra.Command {
	var socket string
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Unload a policy that vigil policy add loaded",
		Long: `delete detaches and forgets a policy added with vigil policy add (NAME, or
NAMESPACE/NAME for a namespaced policy). A policy from a watched file, the
embedded defaults or the cluster is removed where it comes from: delete
refuses it and says where; vigil policy disable detaches it meanwhile.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := agent.NewClient(socket).DeletePolicy(cmd.Context(), args[0]); err != nil {
				return &exitError{code: 1, err: err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: deleted\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&socket, "socket", defaultSocket, "the agent's control socket")
	return cmd
}

func newPolicyEnableCommand(g *globals, enable bool) *cobra.Command {
	var socket string
	use, short, long, done := "enable NAME", "Load a disabled policy again",
		`enable attaches a policy that vigil policy disable detached, in the mode
(enforce or monitor) it had; if its file changed meanwhile, the new version.`, "enabled"
	if !enable {
		use, short, long, done = "disable NAME", "Detach a policy's programs, keeping it listed as disabled",
			`disable detaches every program of a policy and empties its maps: it sees
and enforces nothing until vigil policy enable. It stays in vigil policy list
as disabled; a change of its file does not enable it. Disabling is not kept
across agent restarts.`, "disabled"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := agent.NewClient(socket).SetPolicyEnabled(cmd.Context(), args[0], enable); err != nil {
				return &exitError{code: 1, err: err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", args[0], done)
			return nil
		},
	}
	cmd.Flags().StringVar(&socket, "socket", defaultSocket, "the agent's control socket")
	return cmd
}
