package main

import (
	"github.com/spf13/cobra"

	"github.com/vigilsec/vigil/relay"
)

func newRelayCommand(g *globals) *cobra.Command {
	cfg := relay.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "relay",
		Short: "Serve every node's flows in one view: the cluster's web UI and Hubble API",
		Long: `relay follows the Hubble Observer API of every agent (the pods matching
--peer-selector in --peer-namespace, found through the Kubernetes API, or the
agents given with --peer), keeps their flows in one buffer, and serves them
through the same web UI and Observer API as an agent, with each flow's node.

Beyond loopback it requires --api-token-file or client certificates
(--api-tls-client-ca-file); it connects to agents with TLS when
--peer-tls-ca-file is given (certificates are re-read when they change).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.Validate(); err != nil {
				return &exitError{code: 2, err: err}
			}
			return relay.Run(cmd.Context(), cfg, g.log)
		},
	}
	cfg.AddFlags(cmd.Flags())
	return cmd
}
