package main

import (
	"fmt"
	"io"
	"os"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
)

// globals are the flags every command shares.
type globals struct {
	logFormat string
	logLevel  string
	log       *logrus.Logger
}

func newRootCommand() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "vigil",
		Short: "eBPF runtime security: process, file, syscall and network visibility and enforcement",
		Long: `Vigil watches process execution, file access, syscalls and network flows in the
kernel with eBPF, ties every event to its process tree and pod, enforces
declarative policies in the kernel, and streams JSON events.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			log, err := newLogger(os.Stderr, g.logFormat, g.logLevel)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			g.log = log
			return nil
		},
	}
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "log format: text or json (logs go to stderr)")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	root.AddCommand(newProbeCommand(g))
	root.AddCommand(newPolicyCommand(g))
	root.AddCommand(newNetpolCommand(g))
	root.AddCommand(newAgentCommand(g))
	root.AddCommand(newEventsCommand(g))
	root.AddCommand(newRulesCommand(g))
	root.AddCommand(newRelayCommand(g))
	root.AddCommand(newStatusCommand(g))
	root.AddCommand(newVersionCommand(g))
	root.AddCommand(newBugtoolCommand(g))
	return root
}

func newLogger(w io.Writer, format, level string) (*logrus.Logger, error) {
	log := logrus.New()
	log.SetOutput(w)
	switch format {
	case "text":
		log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	case "json":
		log.SetFormatter(&logrus.JSONFormatter{})
	default:
		return nil, fmt.Errorf("--log-format: unknown format %q (want text or json)", format)
	}
	lvl, err := logrus.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: unknown level %q (want trace, debug, info, warn or error)", level)
	}
	log.SetLevel(lvl)
	return log, nil
}
