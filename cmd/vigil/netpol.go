package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/spf13/cobra"

	"github.com/vigilsec/vigil/dns"
	"github.com/vigilsec/vigil/internal/manifest"
	"github.com/vigilsec/vigil/networkpolicy"
)

// Exit statuses of vigil netpol.
const (
	netpolExitAllowed  = 0
	netpolExitDenied   = 1
	netpolExitBadInput = 2
)

func newNetpolCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "netpol",
		Short: "Evaluate network policies offline against manifests",
		Long: `netpol evaluates Kubernetes NetworkPolicy, CiliumNetworkPolicy and
CiliumClusterwideNetworkPolicy documents against the pods of a set of
manifests (Pods, Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs and
Namespaces), with the same verdict function the kernel datapath is compiled
from.`,
	}
	cmd.AddCommand(newNetpolCheckCommand(g), newNetpolMatrixCommand(g))
	return cmd
}

// netpolConfig is what the netpol commands are given.
type netpolConfig struct {
	Manifests []string
	From, To  string
	Ports     []string
	Output    string
	// Resolve and Hosts give the DNS names of addresses, for toFQDNs.
	Resolve []string
	Hosts   []string
	// Query is the name a DNS query asks for, for rules.dns.
	Query string
}

// resolved reads the name→address table of --resolve and --hosts.
func (c *netpolConfig) resolved() (networkpolicy.Resolved, error) {
	r := networkpolicy.Resolved{}
	for _, s := range c.Resolve {
		if err := networkpolicy.ParseResolve(s, r); err != nil {
			return nil, fmt.Errorf("--resolve: %w", err)
		}
	}
	for _, f := range c.Hosts {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--hosts: %w", err)
		}
		if err := networkpolicy.ParseHosts(f, data, r); err != nil {
			return nil, fmt.Errorf("--hosts:\n%w", err)
		}
	}
	return r, nil
}

// Validate names the flag that is wrong.
func (c *netpolConfig) Validate(check bool) error {
	if len(c.Manifests) == 0 {
		return errors.New("--manifests: give at least one file or directory")
	}
	if check && (c.From != "" || c.To != "" || len(c.Ports) > 0) {
		if c.From == "" {
			return errors.New("--from: give the source as NAMESPACE/POD or an IP address")
		}
		if c.To == "" {
			return errors.New("--to: give the destination as NAMESPACE/POD or an IP address")
		}
		if len(c.Ports) != 1 {
			return errors.New("--port: give exactly one PORT/PROTOCOL, such as 80/TCP")
		}
	}
	for _, p := range c.Ports {
		if _, _, err := networkpolicy.ParsePort(p); err != nil {
			return fmt.Errorf("--port: %w", err)
		}
	}
	switch c.Output {
	case "text", "json":
	default:
		return fmt.Errorf("--output: unknown format %q (want text or json)", c.Output)
	}
	return nil
}

func (c *netpolConfig) flags(cmd *cobra.Command, portUsage string, defPorts []string) {
	cmd.Flags().StringSliceVar(&c.Manifests, "manifests", nil, "YAML file or directory of manifests and policies (repeatable)")
	cmd.Flags().StringSliceVar(&c.Ports, "port", defPorts, portUsage)
	cmd.Flags().StringVarP(&c.Output, "output", "o", "text", "output format: text or json")
}

// manifestWarnings are the warnings about a set of manifests: documents
// ignored for not affecting connectivity, and named ports no pod has.
func manifestWarnings(res *networkpolicy.Resources) manifest.Errors {
	warns := append(manifest.Errors{}, res.Ignored...)
	warns = append(warns, networkpolicy.NamedPortWarnings(res.Policies, res.Pods)...)
	warns.Sort()
	return warns
}

// printWarnings prints warnings as FILE:LINE: field.path: warning: message.
func printWarnings(w io.Writer, warns manifest.Errors) {
	for _, e := range warns {
		fmt.Fprintln(w, formatWarning(e))
	}
}

// loadEngine reads the manifests and compiles them; any problem in them is
// bad input. Warnings go to warn.
func loadEngine(warn io.Writer, paths []string) (*networkpolicy.Engine, error) {
	res, err := networkpolicy.Load(paths...)
	if err != nil {
		return nil, &exitError{code: netpolExitBadInput, err: fmt.Errorf("invalid manifests:\n%w", err)}
	}
	printWarnings(warn, manifestWarnings(res))
	e, err := networkpolicy.Compile(res, nil)
	if err != nil {
		return nil, &exitError{code: netpolExitBadInput, err: err}
	}
	return e, nil
}

// checkManifests is `vigil netpol check` without a flow: it prints every
// problem and warning of the manifests and reports whether they are valid.
func checkManifests(w io.Writer, paths []string) bool {
	res, err := networkpolicy.Load(paths...)
	problems := manifest.AsErrors("", err)
	var warns manifest.Errors
	if res != nil {
		warns = manifestWarnings(res)
	}
	type line struct {
		e    *manifest.Error
		warn bool
	}
	var lines []line
	for _, e := range problems {
		lines = append(lines, line{e, false})
	}
	for _, e := range warns {
		lines = append(lines, line{e, true})
	}
	sort.SliceStable(lines, func(i, j int) bool {
		if lines[i].e.File != lines[j].e.File {
			return lines[i].e.File < lines[j].e.File
		}
		return lines[i].e.Line < lines[j].e.Line
	})
	for _, l := range lines {
		if l.warn {
			fmt.Fprintln(w, formatWarning(l.e))
		} else {
			fmt.Fprintln(w, l.e)
		}
	}
	if len(problems) > 0 {
		return false
	}
	fmt.Fprintf(w, "%d policies, %d pods, %d namespaces: valid\n", len(res.Policies), len(res.Pods), len(res.Namespaces))
	return true
}

func newNetpolCheckCommand(g *globals) *cobra.Command {
	cfg := &netpolConfig{}
	cmd := &cobra.Command{
		Use:   "check --manifests PATH [--from NS/POD --to NS/POD --port 80/TCP]",
		Short: "Check manifests, or decide one flow and name the policy and rule that decided it",
		Long: `check without a flow reads the manifests and prints every problem of every
document, one per line as FILE:LINE: field.path: what is wrong, and warnings
(documents that do not affect connectivity, named ports no pod has) as
FILE:LINE: field.path: warning: ... Exit status: 0 valid, 1 any problem.

check with --from, --to and --port prints the verdict on one flow, and for
each side (egress at the source pod, ingress at the destination pod) the
policies and rules that decided; warnings go to stderr. For toFQDNs rules,
--resolve and --hosts say which DNS names the source pod resolved to which
addresses; --to then takes such a name too. Exit status: 0
allowed (or only audited), 1 denied, 2 bad input.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.Validate(true); err != nil {
				return &exitError{code: netpolExitBadInput, err: err}
			}
			if cfg.From == "" && cfg.To == "" && len(cfg.Ports) == 0 {
				if !checkManifests(cmd.OutOrStdout(), cfg.Manifests) {
					return &exitError{code: 1}
				}
				return nil
			}
			e, err := loadEngine(cmd.ErrOrStderr(), cfg.Manifests)
			if err != nil {
				return err
			}
			from, err := e.ParseEndpoint(cfg.From)
			if err != nil {
				return &exitError{code: netpolExitBadInput, err: fmt.Errorf("--from: %w", err)}
			}
			names, err := cfg.resolved()
			if err != nil {
				return &exitError{code: netpolExitBadInput, err: err}
			}
			to, err := names.Endpoint(e, cfg.To)
			if err != nil {
				return &exitError{code: netpolExitBadInput, err: fmt.Errorf("--to: %w", err)}
			}
			port, proto, _ := networkpolicy.ParsePort(cfg.Ports[0])
			res := e.Check(from, to, proto, port)
			if cfg.Query != "" {
				if _, err := dns.ParseName(cfg.Query); err != nil {
					return &exitError{code: netpolExitBadInput, err: fmt.Errorf("--dns-query: %w", err)}
				}
				res = e.CheckQuery(from, to, proto, port, cfg.Query)
			}
			if cfg.Output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(res.Report()); err != nil {
					return err
				}
			} else {
				fmt.Fprint(cmd.OutOrStdout(), res.Explain())
			}
			if res.Verdict == networkpolicy.Deny {
				return &exitError{code: netpolExitDenied}
			}
			return nil
		},
	}
	cfg.flags(cmd, "destination port and protocol, such as 80/TCP or 53/UDP", nil)
	cmd.Flags().StringVar(&cfg.From, "from", "", "source: NAMESPACE/POD (a workload's name stands for its pods) or an IP address")
	cmd.Flags().StringVar(&cfg.To, "to", "", "destination: NAMESPACE/POD, an IP address, or a DNS name of --resolve/--hosts")
	cmd.Flags().StringArrayVar(&cfg.Resolve, "resolve", nil, "NAME=ADDRESS[,ADDRESS...]: what the source pod learned from DNS, for toFQDNs rules (repeatable)")
	cmd.Flags().StringVar(&cfg.Query, "dns-query", "", "decide a DNS query for this name (the flow is the query to the server: --to SERVER --port 53/UDP), for rules.dns")
	cmd.Flags().StringSliceVar(&cfg.Hosts, "hosts", nil, "file of ADDRESS NAME... lines (the form of /etc/hosts): what the source pod learned from DNS, for toFQDNs rules (repeatable)")
	return cmd
}

func newNetpolMatrixCommand(g *globals) *cobra.Command {
	cfg := &netpolConfig{}
	cmd := &cobra.Command{
		Use:   "matrix --manifests PATH [--port 80/TCP ...]",
		Short: "Print the connectivity of every pod pair",
		Long: `matrix decides every flow from each pod to each other pod for each port and
prints one table per port (rows: source, columns: destination; "." allowed,
"X" denied, "A" audit: allowed, but an audit-mode policy would drop it).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.Validate(false); err != nil {
				return &exitError{code: netpolExitBadInput, err: err}
			}
			e, err := loadEngine(cmd.ErrOrStderr(), cfg.Manifests)
			if err != nil {
				return err
			}
			ports, err := networkpolicy.ParseMatrixPorts(cfg.Ports)
			if err != nil {
				return &exitError{code: netpolExitBadInput, err: fmt.Errorf("--port: %w", err)}
			}
			if cfg.Output == "json" {
				return e.WriteMatrixJSON(cmd.OutOrStdout(), ports)
			}
			return e.WriteMatrix(cmd.OutOrStdout(), ports)
		},
	}
	cfg.flags(cmd, "port and protocol to evaluate, such as 80/TCP (repeatable)", []string{"80/TCP"})
	return cmd
}
