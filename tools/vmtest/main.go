package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// started is when go test started this program: its kill timer counts from
// here.
var started = time.Now()

// Exit statuses of vmtest itself; otherwise it exits with the test's status.
const (
	exitUsage = 2
	exitSetup = 3
)

// Environment variables that set flag defaults, so `go test -exec vmtest`
// can be steered without editing the -exec string.
const (
	envKernel     = "VIGIL_VM_KERNEL"
	envModules    = "VIGIL_VM_MODULES"
	envConsole    = "VIGIL_VM_CONSOLE"
	envContainerd = "VIGIL_VM_CONTAINERD"
)

// defaultModules are loaded unless -modules says otherwise: network tests
// need veth pairs and bridges, container tests overlay mounts, and loading
// them costs a few milliseconds.
const defaultModules = "veth,bridge,overlay"

// defaultTimeout bounds a guest when the test binary runs without
// -test.timeout.
const defaultTimeout = 20 * time.Minute

// config is what the flags set.
type config struct {
	Kernel  string
	Qemu    string
	Busybox string
	Modules []string
	Memory  int
	CPUs    int
	Timeout time.Duration
	Append  string
	Include []string
	Console bool
	Keep    bool
	// Containerd says when the guest gets the container runtime: auto
	// (when the test binary links internal/containerdtest), always, never.
	Containerd string
}

// Validate checks the flags, naming the one at fault.
func (c *config) Validate() error {
	switch {
	case c.Kernel == "":
		return fmt.Errorf("-kernel: no kernel given (pass -kernel DIR or set %s; scripts/vm-kernels.sh fetches the test kernels into .cache/kernels/)", envKernel)
	case c.Memory < 256:
		return fmt.Errorf("-mem: %d MiB is too little for the test binary and its initramfs (want at least 256)", c.Memory)
	case c.CPUs < 1:
		return fmt.Errorf("-smp: want at least 1 CPU, got %d", c.CPUs)
	case c.Timeout < 0:
		return fmt.Errorf("-timeout: must not be negative, got %s", c.Timeout)
	}
	switch c.Containerd {
	case containerdAuto, containerdAlways, containerdNever:
	default:
		return fmt.Errorf("-containerd: %q is none of auto, always, never", c.Containerd)
	}
	for _, m := range c.Modules {
		if strings.ContainsAny(m, "/ \t") {
			return fmt.Errorf("-modules: %q is not a module name", m)
		}
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseFlags(args []string, stderr io.Writer) (*config, []string, error) {
	cfg := &config{}
	fl := flag.NewFlagSet("vmtest", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() {
		fmt.Fprintf(stderr, "usage: vmtest [flags] TEST-BINARY [test flags]\n\n"+
			"Runs a Go test binary inside qemu on another kernel; use it as go test -exec.\n\n")
		fl.PrintDefaults()
	}
	var modules, include string
	fl.StringVar(&cfg.Kernel, "kernel", os.Getenv(envKernel), "kernel to boot: an unpacked kernel package folder (.cache/kernels/6.1) or a vmlinuz file (default $"+envKernel+")")
	fl.StringVar(&cfg.Qemu, "qemu", "qemu-system-x86_64", "qemu binary")
	fl.StringVar(&cfg.Busybox, "busybox", "/bin/busybox", "static busybox for the guest's shell and tools")
	fl.StringVar(&modules, "modules", envOr(envModules, defaultModules), "comma-separated kernel modules to load in the guest, with their dependencies (default $"+envModules+" or "+defaultModules+"; empty for none)")
	fl.IntVar(&cfg.Memory, "mem", 1024, "guest memory in MiB")
	fl.IntVar(&cfg.CPUs, "smp", 1, "guest CPUs")
	fl.DurationVar(&cfg.Timeout, "timeout", 0, "how long the guest may run before it is killed (default: the test's -test.timeout plus "+bootMargin.String()+", or "+defaultTimeout.String()+")")
	fl.StringVar(&cfg.Append, "append", "", "more kernel command-line arguments")
	fl.StringVar(&include, "include", "", "comma-separated host files or folders to pack at the same path (testdata/ of the package is always packed)")
	fl.BoolVar(&cfg.Console, "console", os.Getenv(envConsole) == "1", "copy the kernel console to stderr (default $"+envConsole+"=1)")
	fl.StringVar(&cfg.Containerd, "containerd", envOr(envContainerd, containerdAuto), "pack containerd, runc and the CNI plugins: auto (when the test binary links internal/containerdtest), always or never (default $"+envContainerd+" or auto)")
	fl.BoolVar(&cfg.Keep, "keep", false, "keep the work folder with the initramfs and print its path")
	if err := fl.Parse(args); err != nil {
		return nil, nil, err
	}
	cfg.Modules = splitList(modules)
	cfg.Include = splitList(include)
	if fl.NArg() == 0 {
		fl.Usage()
		return nil, nil, errors.New("no test binary given")
	}
	return cfg, fl.Args(), nil
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg, rest, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "vmtest:", err)
		}
		return exitUsage
	}
	bin, testArgs := rest[0], rest[1:]
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGQUIT)
	defer stop()

	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(stderr, "vmtest:", err)
		return exitSetup
	}
	if _, listing := testFlag(testArgs, "list"); listing {
		// Listing runs nothing; the host answers it.
		return runOnHost(ctx, bin, testArgs, stdout, stderr)
	}
	matched, err := hasMatchingTests(ctx, bin, testArgs, wd)
	if err != nil {
		fmt.Fprintln(stderr, "vmtest:", err)
		return exitSetup
	}
	if !matched {
		// What the test binary itself prints; go test reports
		// "ok <pkg> [no tests to run]".
		fmt.Fprint(stdout, "testing: warning: no tests to run\nPASS\n")
		return 0
	}
	code, err := boot(ctx, cfg, bin, testArgs, wd, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "vmtest: %s: %v\n", cfg.Kernel, err)
		return exitSetup
	}
	return code
}

// runOnHost runs the test binary directly and returns its exit status.
func runOnHost(ctx context.Context, bin string, args []string, stdout, stderr io.Writer) int {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee) && ee.ExitCode() > 0:
		return ee.ExitCode()
	}
	fmt.Fprintln(stderr, "vmtest:", err)
	return exitSetup
}

// hasMatchingTests asks the test binary on the host (-test.list) whether
// any test, example, benchmark or fuzz target matches -test.run, so that
// packages without privileged tests never boot a VM. Runs that ask for
// benchmarks or fuzzing always boot.
func hasMatchingTests(ctx context.Context, bin string, args []string, dir string) (bool, error) {
	for _, f := range []string{"bench", "fuzz"} {
		if v, _ := testFlag(args, f); v != "" {
			return true, nil
		}
	}
	pattern, _ := testFlag(args, "run")
	pattern = topLevelPattern(pattern)
	if pattern == "" {
		pattern = "."
	}
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "-test.list", pattern)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, &out, &errOut
	if err := cmd.Run(); err != nil {
		return false, fmt.Errorf("list tests of %s on the host: %w\n%s%s", bin, err, out.String(), errOut.String())
	}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "" {
			return true, nil
		}
	}
	return false, nil
}

// guestEnv is the test's environment in the guest: a fixed base, the
// privileged-test switch, and from the host every VIGIL_* variable (but
// vmtest's own VIGIL_VM_*) and the Go runtime's settings.
func guestEnv(host []string) []string {
	env := map[string]string{
		"PATH":             "/bin",
		"HOME":             "/root",
		"TMPDIR":           "/tmp",
		"VIGIL_PRIVILEGED": "1",
	}
	runtimeVars := []string{"GOTRACEBACK", "GODEBUG", "GOMAXPROCS", "GOGC", "GOMEMLIMIT"}
	for _, kv := range host {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		switch {
		case k == "VIGIL_PRIVILEGED" || strings.HasPrefix(k, "VIGIL_VM_"):
		case strings.HasPrefix(k, "VIGIL_"), slices.Contains(runtimeVars, k):
			env[k] = v
		}
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

// kernelCmdline is the guest's command line: console on ttyS0, kernel
// messages below error level hidden, reboot (which -no-reboot turns into an
// exit) on panic, BPF LSM made active when the build does not already
// enable it, then the user's extra arguments.
func kernelCmdline(k kernel, extra string, warn io.Writer) string {
	args := []string{"console=ttyS0", "quiet", "panic=-1"}
	if k.Config != "" {
		b, err := os.ReadFile(k.Config)
		if err == nil {
			var cfg kernelConfig
			cfg, err = parseKernelConfig(b)
			if err == nil {
				var lsm string
				lsm, err = bpfLSMArg(cfg)
				if lsm != "" {
					args = append(args, lsm)
				}
			}
		}
		if err != nil {
			fmt.Fprintf(warn, "vmtest: %s: %v\n", k.Config, err)
		}
	}
	if extra != "" {
		args = append(args, extra)
	}
	return strings.Join(args, " ")
}

func newToken() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// boot builds the initramfs and runs the test in the guest.
func boot(ctx context.Context, cfg *config, bin string, testArgs []string, wd string, stdout, stderr io.Writer) (int, error) {
	if err := cfg.Validate(); err != nil {
		return 0, err
	}
	k, err := findKernel(cfg.Kernel)
	if err != nil {
		return 0, err
	}
	if _, err := exec.LookPath(cfg.Qemu); err != nil {
		return 0, fmt.Errorf("-qemu: %w (install it with scripts/setup-host.sh --vm)", err)
	}
	if err := checkStatic(cfg.Busybox, "-busybox:", "install busybox-static, e.g. with scripts/setup-host.sh --vm"); err != nil {
		return 0, err
	}
	if err := checkStatic(bin, "test binary", "build it with CGO_ENABLED=0"); err != nil {
		return 0, err
	}
	work, err := os.MkdirTemp("", "vmtest-")
	if err != nil {
		return 0, err
	}
	if cfg.Keep {
		fmt.Fprintln(stderr, "vmtest: work folder", work)
	} else {
		defer os.RemoveAll(work)
	}

	var mods []string
	if len(cfg.Modules) > 0 {
		if k.Modules == "" {
			return 0, fmt.Errorf("-modules: kernel %s has no lib/modules/%s folder beside it; pass -modules '' to boot without modules", k.Image, k.Release)
		}
		ms, err := openModules(k.Modules, work)
		if err != nil {
			return 0, err
		}
		if mods, err = ms.Resolve(cfg.Modules); err != nil {
			return 0, fmt.Errorf("-modules: %w", err)
		}
	}
	var rt []guestFile
	if want, err := wantRuntime(cfg.Containerd, bin); err != nil {
		return 0, fmt.Errorf("-containerd: %w", err)
	} else if want {
		if rt, err = hostRuntimeFiles(); err != nil {
			return 0, fmt.Errorf("-containerd: %w", err)
		}
	}
	include := make([]string, len(cfg.Include))
	for i, p := range cfg.Include {
		if include[i], err = filepath.Abs(p); err != nil {
			return 0, err
		}
	}
	im := &image{
		Busybox: cfg.Busybox,
		Binary:  bin,
		WorkDir: wd,
		Include: include,
		Modules: mods,
		Runtime: rt,
		Env:     guestEnv(os.Environ()),
		// The guest cannot write the host's test log; go test then just
		// does not cache the result.
		Args:  dropTestFlag(testArgs, "testlogfile"),
		Token: newToken(),
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = guestTimeout(testArgs, defaultTimeout)
		if t, ok := testTimeout(testArgs); ok {
			// go test kills this program a minute after the test's
			// timeout, counted from its start: the test gets what is left
			// after booting, minus time to report, and the guest is
			// stopped just before go test would.
			spent := time.Since(started)
			im.TestBudget, im.TestTimeout = t+reportMargin-spent, t
			timeout = t + bootMargin - spent
		}
	}
	initrd := filepath.Join(work, "initramfs.cpio")
	f, err := os.Create(initrd)
	if err != nil {
		return 0, err
	}
	if err := im.write(f); err != nil {
		f.Close()
		return 0, fmt.Errorf("write initramfs: %w", err)
	}
	if err := f.Close(); err != nil {
		return 0, err
	}

	m := &machine{
		Qemu:    cfg.Qemu,
		Kernel:  k.Image,
		Initrd:  initrd,
		Cmdline: kernelCmdline(k, cfg.Append, stderr),
		Memory:  cfg.Memory,
		CPUs:    cfg.CPUs,
		Timeout: timeout,
		Token:   im.Token,
		Stdout:  stdout,
		Grace:   20 * time.Second,
	}
	if cfg.Console {
		m.Console = prefixWriter{w: stderr, prefix: "console: "}
	}
	return m.Run(ctx)
}

// prefixWriter writes each line (one per Write, as consoleWatch calls it)
// with a prefix.
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	if _, err := io.WriteString(p.w, p.prefix+string(b)); err != nil {
		return 0, err
	}
	return len(b), nil
}
