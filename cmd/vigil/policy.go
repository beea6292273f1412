package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"

	"github.com/cilium/ebpf/btf"
	"github.com/moby/sys/mountinfo"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/vigilsec/vigil/internal/manifest"
	"github.com/vigilsec/vigil/tracingpolicies"
)

// newPolicyCommand is `vigil policy`; its subcommands work on tracing
// policies. Add a subcommand with cmd.AddCommand in this function.
func newPolicyCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Work with tracing policies (TracingPolicy documents)",
		Args:  cobra.NoArgs,
	}
	// A bad flag is a usage error (status 2) for every subcommand.
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: 2, err: err}
	})
	cmd.AddCommand(newPolicyValidateCommand(g))
	cmd.AddCommand(newPolicyListCommand(g))
	cmd.AddCommand(newPolicyModeCommand(g))
	cmd.AddCommand(newPolicyAddCommand(g))
	cmd.AddCommand(newPolicyDeleteCommand(g))
	cmd.AddCommand(newPolicyEnableCommand(g, true))
	cmd.AddCommand(newPolicyEnableCommand(g, false))
	return cmd
}

// validateConfig is the configuration of `vigil policy validate`.
type validateConfig struct {
	// Paths are files, or directories searched for *.yaml, *.yml and *.json.
	Paths []string
	// NoKernel skips the checks against the running kernel.
	NoKernel bool
	// BTF is a BTF file (a vmlinux) to validate against instead of the
	// running kernel's.
	BTF string
}

// Validate checks the configuration; its errors name the flag.
func (c *validateConfig) Validate() error {
	if len(c.Paths) == 0 {
		return errors.New("no policy files given (usage: vigil policy validate FILE|DIR...)")
	}
	if c.NoKernel && c.BTF != "" {
		return errors.New("--btf and --no-kernel exclude each other")
	}
	return nil
}

func newPolicyValidateCommand(g *globals) *cobra.Command {
	cfg := &validateConfig{}
	cmd := &cobra.Command{
		Use:   "validate FILE|DIR...",
		Short: "Check tracing policy files, and that they fit this kernel",
		Long: `validate parses every TracingPolicy document of the given files (directories
are searched for *.yaml, *.yml and *.json files) and checks it completely: the schema
(unknown and unsupported fields are errors), values, limits, the safety rule
for unrestricted enforcement (filters that match nearly everything, such as
matchBinaries Prefix "/", are warned about and do not restrict), and, against the running kernel's BTF (or the one
given with --btf), that every function, syscall, LSM hook and tracepoint exists
and that each argument fits its parameter.

It prints "FILE: N policies valid" for each good file, or one line per problem,
FILE:LINE: field.path: what is wrong: every problem of every document at once
(duplicate keys, unknown fields, values, limits). Warnings are printed as
FILE:LINE: field.path: warning: ... and do not fail. Exit status: 0 when every document is
valid, 1 when any is not, 2 on usage errors.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Paths = args
			if err := cfg.Validate(); err != nil {
				return &exitError{code: 2, err: err}
			}
			kernel, err := loadKernel(cfg, g.log)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			if !validatePolicies(cmd.OutOrStdout(), cfg.Paths, kernel) {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&cfg.NoKernel, "no-kernel", false, "skip the checks against the running kernel (functions, hooks, argument types)")
	cmd.Flags().StringVar(&cfg.BTF, "btf", "", "validate against this kernel BTF file (a vmlinux) instead of the running kernel")
	return cmd
}

// kernelInfo is what policies are validated against; both fields may be
// nil.
type kernelInfo struct {
	spec *btf.Spec
	opts tracingpolicies.ValidateOptions
}

// vmlinuxBTF is where the running kernel exposes its BTF.
const vmlinuxBTF = "/sys/kernel/btf/vmlinux"

func loadKernel(cfg *validateConfig, log *logrus.Logger) (kernelInfo, error) {
	var k kernelInfo
	switch {
	case cfg.NoKernel:
		return k, nil
	case cfg.BTF != "":
		spec, err := btf.LoadSpec(cfg.BTF)
		if err != nil {
			return k, fmt.Errorf("--btf: load %s: %w", cfg.BTF, err)
		}
		k.spec = spec
		return k, nil
	}
	if _, err := os.Stat(vmlinuxBTF); err == nil {
		spec, err := btf.LoadKernelSpec()
		if err != nil {
			log.WithError(err).Warn("Cannot load the kernel's BTF; functions, hooks and argument types are not checked")
		}
		k.spec = spec
	} else {
		log.WithField("path", vmlinuxBTF).Warn("This kernel has no BTF; functions, hooks and argument types are not checked (use --btf or --no-kernel)")
	}
	if dir := findTracefs("/proc/self/mountinfo"); dir != "" {
		k.opts.Tracefs = os.DirFS(dir)
	}
	return k, nil
}

// findTracefs returns where tracefs is mounted according to the mount table
// at mountinfo, else the first of its usual places that has events, or "".
func findTracefs(mountinfoPath string) string {
	if f, err := os.Open(mountinfoPath); err == nil {
		defer f.Close()
		if mounts, err := mountinfo.GetMountsFromReader(f, mountinfo.FSTypeFilter("tracefs")); err == nil && len(mounts) > 0 {
			return mounts[0].Mountpoint
		}
	}
	for _, dir := range []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"} {
		if _, err := os.Stat(dir + "/events"); err == nil {
			return dir
		}
	}
	return ""
}

// validatePolicies checks every file under paths and prints the result; it
// reports whether everything was valid.
func validatePolicies(w io.Writer, paths []string, kernel kernelInfo) bool {
	ok := true
	var all []*tracingpolicies.Policy
	for _, path := range paths {
		files, err := policyFiles(path)
		if err != nil {
			fmt.Fprintf(w, "%s: %v\n", path, err)
			ok = false
			continue
		}
		for _, file := range files {
			valid, good := validateFile(w, file, kernel)
			ok = ok && good
			all = append(all, valid...)
		}
	}
	for _, e := range tracingpolicies.CheckUnique(all) {
		fmt.Fprintln(w, e)
		ok = false
	}
	return ok
}

func policyFiles(path string) ([]string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, pe.Err
		}
		return nil, err
	}
	if !fi.IsDir() {
		return []string{path}, nil
	}
	files, err := manifest.Files(path)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, errors.New(manifest.NoFilesMessage)
	}
	return files, nil
}

// validateFile prints the problems of one file, or that it is valid.
func validateFile(w io.Writer, file string, kernel kernelInfo) ([]*tracingpolicies.Policy, bool) {
	policies, err := tracingpolicies.ParseFile(file)
	problems := manifest.AsErrors(file, err)
	var warnings manifest.Errors
	var valid []*tracingpolicies.Policy
	for _, p := range policies {
		warnings = append(warnings, p.Warnings...)
		warns, err := tracingpolicies.Validate(p, kernel.spec, &kernel.opts)
		warnings = append(warnings, warns...)
		if err != nil {
			problems = append(problems, manifest.AsErrors(file, err)...)
			continue
		}
		valid = append(valid, p)
	}
	byLine(warnings)
	byLine(problems)
	for _, e := range warnings {
		fmt.Fprintln(w, formatWarning(e))
	}
	for _, e := range problems {
		fmt.Fprintln(w, e)
	}
	if len(problems) > 0 {
		return valid, false
	}
	noun := "policies"
	if len(valid) == 1 {
		noun = "policy"
	}
	fmt.Fprintf(w, "%s: %d %s valid\n", file, len(valid), noun)
	return valid, true
}

// byLine orders the problems of one file by line, keeping the order of
// those on the same line.
func byLine(errs manifest.Errors) {
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
}

// formatWarning prints a warning as FILE:LINE: field.path: warning: message.
func formatWarning(e *manifest.Error) string {
	w := *e
	w.Msg = "warning: " + e.Msg
	return w.Error()
}
