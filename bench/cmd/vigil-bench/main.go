// Command vigil-bench measures what Vigil costs a node: `make bench` runs
// `vigil-bench run`, which times workloads with and without the agent and
// writes the report into docs/benchmarks.md. `vigil-bench work NAME` is one
// workload, run by the harness in a child process.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vigilsec/vigil/bench/harness"
	"github.com/vigilsec/vigil/bench/workload"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = run(os.Args[2:])
	case "work":
		err = work(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vigil-bench:", err)
		var fe flagError
		if errors.As(err, &fe) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type flagError struct{ error }

func usage() {
	fmt.Fprintln(os.Stderr, `usage:
  vigil-bench run [flags]        run the benchmarks (root; see -h)
  vigil-bench work NAME [flags]  one workload (exec, exec-sustained, file, file-monitored,
                                 connect, bulk, verdict, serve), printing its result as JSON`)
	os.Exit(2)
}

func run(args []string) error {
	o := harness.DefaultOptions()
	// -quick changes the defaults; flags given explicitly still win.
	for _, a := range args {
		if a == "-quick" || a == "--quick" || a == "-quick=true" || a == "--quick=true" {
			o = o.Quick()
		}
	}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.Bool("quick", false, "fewer rounds and smaller workloads (a few minutes; to check the harness, not to quote)")
	only := fs.String("only", "", "comma-separated parts to run: table, idle, stats, sustained, netpol, gobench, vm (default all; vm only with -vm-kernel)")
	configs := fs.String("configs", "", "comma-separated agent configurations: "+strings.Join(harness.ConfigNames, ", ")+" (default all)")
	workloads := fs.String("workloads", "", "comma-separated workloads of the table and the statistics: "+strings.Join(harness.WorkloadNames, ", ")+" (default all)")
	vmKernels := fs.String("vm-kernel", "", "comma-separated kernel folders (scripts/vm-kernels.sh) to run the overhead table in, in qemu, for the vm part")
	fs.StringVar(&o.VMTool, "vmtest", "bin/vmtest", "the vmtest binary that boots -vm-kernel")
	guestArgs := fs.String("guest-args", strings.Join(harness.DefaultGuestArgs, " "), "flags of the vigil-bench run inside each VM")
	fs.BoolVar(&o.Guest, "guest", false, "print only the part a VM run contributes to its host's report (the harness runs this inside the VM)")
	fs.BoolVar(&o.NoRedis, "no-redis", false, "leave out the redis workload")
	fs.StringVar(&o.Vigil, "vigil", "bin/vigil", "agent binary")
	fs.StringVar(&o.Repo, "repo", ".", "repository root (examples, Go benchmarks, docs)")
	fs.StringVar(&o.Docs, "docs", "docs/benchmarks.md", "file to write the report into, between markers (empty: stdout only)")
	fs.IntVar(&o.Rounds, "rounds", o.Rounds, "A/B rounds")
	fs.IntVar(&o.ExecN, "exec", o.ExecN, "execs per exec-storm run")
	fs.IntVar(&o.FileN, "file", o.FileN, "opens per file I/O run")
	fs.IntVar(&o.MonitoredN, "file-monitored", o.MonitoredN, "opens of the monitored file per run")
	fs.IntVar(&o.ConnectN, "connect", o.ConnectN, "loopback connections per run")
	fs.Int64Var(&o.BulkBytes, "bulk-bytes", o.BulkBytes, "bytes per bulk TCP run")
	fs.IntVar(&o.RedisN, "redis-requests", o.RedisN, "redis-benchmark requests per test")
	fs.IntVar(&o.RedisClients, "redis-clients", o.RedisClients, "redis-benchmark parallel clients")
	fs.DurationVar(&o.Sustained, "sustained", o.Sustained, "duration of the sustained exec storm")
	fs.DurationVar(&o.Idle, "idle", o.Idle, "how long each agent is left alone for the idle figures")
	fs.IntVar(&o.Identities, "identities", o.Identities, "identities of the large network policy set")
	fs.IntVar(&o.Rules, "rules", o.Rules, "rules of the large network policy set")
	fs.IntVar(&o.Connects, "latency-connects", o.Connects, "connects per network policy latency run")
	fs.IntVar(&o.NewPodTrials, "newpod-trials", o.NewPodTrials, "trials per new-pod measurement")
	if err := fs.Parse(args); err != nil {
		return flagError{err}
	}
	if *only != "" {
		o.Only = strings.Split(*only, ",")
	}
	if *configs != "" {
		o.Configs = strings.Split(*configs, ",")
	}
	if *workloads != "" {
		o.Workloads = strings.Split(*workloads, ",")
	}
	if *vmKernels != "" {
		for _, k := range strings.Split(*vmKernels, ",") {
			abs, err := filepath.Abs(k)
			if err != nil {
				return err
			}
			if _, err := os.Stat(filepath.Join(abs, "boot")); err != nil {
				return flagError{fmt.Errorf("-vm-kernel %s: %w (scripts/vm-kernels.sh fetches the test kernels)", k, err)}
			}
			o.VMKernels = append(o.VMKernels, abs)
		}
		abs, err := filepath.Abs(o.VMTool)
		if err != nil {
			return err
		}
		o.VMTool = abs
	}
	o.GuestArgs = strings.Fields(*guestArgs)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	o.Self = self
	if o.Vigil, err = filepath.Abs(o.Vigil); err != nil {
		return err
	}
	if o.Repo, err = filepath.Abs(o.Repo); err != nil {
		return err
	}
	if _, err := os.Stat(o.Vigil); err != nil {
		return flagError{fmt.Errorf("-vigil %s: %w (make build)", o.Vigil, err)}
	}
	if err := o.Validate(); err != nil {
		return flagError{err}
	}
	o.Command = "vigil-bench run " + strings.Join(args, " ")
	o.Out, o.Progress = os.Stdout, os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return harness.Run(ctx, o)
}

func work(args []string) error {
	if len(args) < 1 {
		usage()
	}
	name := args[0]
	fs := flag.NewFlagSet("work "+name, flag.ContinueOnError)
	n := fs.Int("n", 1000, "operations")
	dir := fs.String("dir", "", "file: directory for the files it creates")
	path := fs.String("path", "", "file-monitored: the file to open")
	addr := fs.String("addr", "", "connect, verdict: server address (IPv4:port; connect: empty for a loopback server of its own)")
	lat := fs.Bool("latencies", false, "connect: report every connect's latency")
	warmup := fs.Int("warmup", 0, "connect: untimed connections first")
	bytes := fs.Int64("bytes", 1<<30, "bulk: bytes to send")
	chunk := fs.Int("chunk", 128<<10, "bulk: bytes per write")
	workers := fs.Int("workers", 1, "exec-sustained: parallel exec loops")
	dur := fs.Duration("duration", 30*time.Second, "exec-sustained: how long")
	denied := fs.Bool("denied", true, "verdict: wait for EPERM (false: for a connect that succeeds)")
	interval := fs.Duration("interval", time.Millisecond, "verdict: pause between connects")
	timeout := fs.Duration("timeout", 10*time.Second, "verdict: give up after")
	listen := fs.String("listen", "", "serve: comma-separated addresses")
	if err := fs.Parse(args[1:]); err != nil {
		return flagError{err}
	}
	var r workload.Result
	var err error
	switch name {
	case "exec":
		r, err = workload.ExecStorm("/bin/true", *n)
	case "exec-sustained":
		r, err = workload.ExecSustained("/bin/true", *workers, *dur)
	case "file":
		if *dir == "" {
			return flagError{errors.New("work file: -dir is required")}
		}
		var paths []string
		if paths, err = workload.MakeFiles(*dir+fmt.Sprintf("-%d", os.Getpid()), 64, 4096); err == nil {
			r, err = workload.FileIO(paths, *n)
			os.RemoveAll(filepath.Dir(paths[0]))
		}
	case "file-monitored":
		if *path == "" {
			return flagError{errors.New("work file-monitored: -path is required")}
		}
		r, err = workload.FileIO([]string{*path}, *n)
	case "connect":
		r, err = workload.TCPConnect(*addr, *warmup, *n, *lat)
	case "bulk":
		r, err = workload.TCPBulk(*bytes, *chunk)
	case "verdict":
		r, err = workload.WaitVerdict(*addr, *denied, *interval, *timeout)
	case "serve":
		if *listen == "" {
			return flagError{errors.New("work serve: -listen is required")}
		}
		return workload.Serve(strings.Split(*listen, ","))
	default:
		return flagError{fmt.Errorf("unknown workload %q", name)}
	}
	if err != nil {
		return err
	}
	return r.Write(os.Stdout)
}
