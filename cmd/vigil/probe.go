package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/vigilsec/vigil/kprobes"
)

func newProbeCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "probe",
		Short: "Report what this kernel can do and which mechanism each hook will use",
		Long: `probe loads (and where it matters attaches) a minimal BPF program for each
kernel feature Vigil uses, then prints which mechanism serves each kind of
hook and action on this kernel. Everything it loads is removed again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := kprobes.Probe(nil)
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(f)
			}
			return printProbeTable(cmd.OutOrStdout(), f)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func printProbeTable(w io.Writer, f *kprobes.Features) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	k := f.Kernel
	fmt.Fprintf(tw, "KERNEL\n")
	fmt.Fprintf(tw, "  release\t%s\n", k.Release)
	fmt.Fprintf(tw, "  btf\t%s\n", yesNo(k.BTF))
	fmt.Fprintf(tw, "  lockdown\t%s\n", k.Lockdown)
	fmt.Fprintf(tw, "  lsms\t%s (bpf active: %s)\n", strings.Join(k.LSMs, ","), yesNo(k.BPFLSM))
	fmt.Fprintf(tw, "  bpffs\t%s\n", k.BPFFS)
	fmt.Fprintf(tw, "  cgroup v2\t%s\n", orNone(k.Cgroup2))
	fmt.Fprintf(tw, "  tracefs\t%s\n", orNone(k.Tracefs))
	fmt.Fprintf(tw, "\nFEATURE\tWORKS\tPROBE\tERROR\n")
	for _, feat := range kprobes.AllFeatures {
		r := f.Results[feat]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", feat, yesNo(r.OK), feat.Description(), r.Error)
	}
	fmt.Fprintf(tw, "\nHOOK\tACTION\tMECHANISM\tDETAIL\n")
	for _, p := range f.Plans {
		detail := p.Detail
		if !p.Available() {
			detail = p.Reason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Hook, p.Action, p.Mechanism, detail)
	}
	return tw.Flush()
}

func orNone(s string) string {
	if s == "" {
		return "(not mounted)"
	}
	return s
}
