package main

import (
	"github.com/spf13/cobra"

	"github.com/vigilsec/vigil/agent"
	"github.com/vigilsec/vigil/networkpolicy/datapath"
)

func newAgentCommand(g *globals) *cobra.Command {
	cfg := agent.DefaultConfig()
	var configFile, ringbufSize string
	var cleanupPins bool
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the agent: watch, enforce and stream events as JSON lines",
		Long: `agent loads Vigil's BPF programs, reports process, policy and network events
as one JSON object per line (stdout by default) and enforces the loaded
policies in the kernel. It needs root (or CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN,
CAP_NET_ADMIN and CAP_SYS_RESOURCE). Logs go to stderr, events never do.

Every flag can also be set in a YAML file given with --config, with the flag
name as key (export-file: /var/log/vigil/events.json); flags win.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configFile != "" {
				if err := agent.ApplyConfigFile(configFile, cmd.Flags()); err != nil {
					return &exitError{code: 2, err: err}
				}
			}
			if cleanupPins {
				// The DNS state first: it may live below the pin directory.
				var dnsPins int
				if dir := cfg.NetpolDNS.PinDir; dir != "-" {
					if dir == "" {
						dir = datapath.DefaultPinDir
					}
					n, err := datapath.RemovePinned(dir)
					if err != nil {
						return errorf("--cleanup-pins: %v", err)
					}
					dnsPins = n
				}
				n, err := agent.CleanupPins(cfg.BPFPinDir)
				if err != nil {
					return errorf("--cleanup-pins: %v", err)
				}
				n += dnsPins
				g.log.WithField("pins", n).WithField("dir", cfg.BPFPinDir).Info("removed the pinned programs and maps of --keep-enforcement-on-exit; their policies are no longer enforced")
				return nil
			}
			size, err := agent.ParseSize(ringbufSize)
			if err != nil {
				return &exitError{code: 2, err: errorf("--ringbuf-size: %v", err)}
			}
			cfg.RingBufferSize = size
			a, err := agent.New(cfg, g.log)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			return a.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "YAML file setting any of these flags (flag names as keys)")
	f.StringVar(&cfg.NodeName, "node-name", cfg.NodeName, "node name reported in events (default: $NODE_NAME or the host name)")
	f.StringVar(&ringbufSize, "ringbuf-size", "8Mi", "event ring buffer size: a power of two, multiple of the page size (e.g. 8Mi)")
	f.IntVar(&cfg.ProcessCacheSize, "process-cache-size", cfg.ProcessCacheSize, "most processes (live and recently exited) kept in the process cache and the kernel's process table (0: one per 512 KiB of the node's memory, a quarter of kernel.threads-max, between 4096 and 65536)")
	f.BoolVar(&cfg.BPFStats, "bpf-stats", false, "collect BPF program run counts and times (vigil_bpf_program_*); costs about two clock reads per program run")
	f.StringVar(&cfg.MetricsAddr, "metrics-addr", cfg.MetricsAddr, "address for /metrics, /healthz and /readyz (empty to disable)")
	f.StringVar(&cfg.PprofAddr, "pprof-addr", "", "loopback address serving Go profiles at /debug/pprof/ (for example 127.0.0.1:6060; empty to disable)")
	f.StringVar(&cfg.SocketPath, "socket", cfg.SocketPath, "control socket for vigil policy and vigil events (mode 0600)")
	f.StringArrayVar(&cfg.ExecFilter.CgroupPaths, "exec-filter-cgroup", nil, "drop exec/exit events of processes in this cgroup v2 path (repeatable)")
	f.StringArrayVar(&cfg.ExecFilter.PidNamespaces, "exec-filter-pidns", nil, `drop exec/exit events of this pid namespace: an inode number or "host" (repeatable)`)
	f.StringArrayVar(&cfg.ExecFilter.Binaries, "exec-filter-binary", nil, "drop exec/exit events of this executable path (repeatable)")
	f.StringArrayVar(&cfg.Policies, "policy", nil, "tracing policy file or directory to load and watch for changes (repeatable)")
	f.StringSliceVar(&cfg.ProtectBinaries, "protect-binaries", cfg.ProtectBinaries, "programs whose processes policies never kill or deny unless a selector names them exactly (matchBinaries In, matchPIDs In) and its policy sets allow-protected-enforcement: names looked up in $PATH and /usr/bin, /usr/sbin, /bin, /sbin, /usr/local/bin, /usr/local/sbin, or absolute paths, in the agent's and the host's file system (/proc/1/root) when the agent starts and again when their directories change (never withdrawn while it runs); glob patterns allowed; the agent, its parents, PID 1 and kernel threads are always protected")
	f.BoolVar(&cfg.KeepEnforcementOnExit, "keep-enforcement-on-exit", false, "pin the programs that enforce tracing policies (and the process sensor they need) and network policies under --bpf-pin-dir, so that they keep enforcing when the agent stops or is killed; a restarted agent takes them over without a gap and removes the pins of policies it no longer has. Off (the default): enforcement ends with the agent, and a start removes what an earlier run pinned")
	f.StringVar(&cfg.BPFPinDir, "bpf-pin-dir", cfg.BPFPinDir, "directory on a BPF file system for --keep-enforcement-on-exit (a bpffs is mounted if there is none)")
	f.BoolVar(&cleanupPins, "cleanup-pins", false, "remove everything --keep-enforcement-on-exit pinned under --bpf-pin-dir (its policies stop being enforced) and the DNS state under --dns-state-dir, and exit; for an uninstall, with the agent stopped")
	f.BoolVar(&cfg.NoDefaultPolicies, "no-default-policies", false, "do not load the embedded default policies")
	f.StringVar(&cfg.Flows, "flows", cfg.Flows, "network flows to report: off, start (one event per connection) or start-end (also its end, with byte counts)")
	f.StringVar(&cfg.FlowRepeats, "flow-repeats", cfg.FlowRepeats, "connections of a process to the same service and address as one already reported: fold (counted, one event with their count a second), rate-limit=DURATION (the same over DURATION) or report-all (an event each)")
	f.BoolVar(&cfg.RawTracepoints, "force-raw-tracepoints", false, "use raw tracepoints even where tp_btf works")
	f.MarkHidden("force-raw-tracepoints")
	cfg.Export.AddFlags(f)
	cfg.Identity.AddFlags(f)
	cfg.Rules.AddFlags(f)
	cfg.UI.AddFlags(f)
	f.BoolVar(&cfg.KubernetesTracingPolicies, "kubernetes-tracing-policies", cfg.KubernetesTracingPolicies, "follow TracingPolicy objects in the cluster (when the Kubernetes API is used)")
	f.BoolVar(&cfg.KubernetesNetworkPolicies, "kubernetes-network-policies", false, "enforce the cluster's NetworkPolicy and CiliumNetworkPolicy objects (when the Kubernetes API is used)")
	f.StringArrayVar(&cfg.NetworkPolicies, "network-policy", nil, "NetworkPolicy / CiliumNetworkPolicy file or directory to enforce and watch (repeatable)")
	f.DurationVar(&cfg.NetpolDNS.MinTTL, "dns-min-ttl", datapath.DefaultDNSMinTTL, "toFQDNs: the least time an address of a DNS answer stays allowed, whatever its TTL (at least 1s)")
	f.IntVar(&cfg.NetpolDNS.MaxIPs, "dns-max-ips-per-answer", datapath.DefaultDNSMaxIPs, "toFQDNs: the most addresses one DNS answer allows (-1: no limit)")
	f.BoolVar(&cfg.NetpolDNS.Visibility, "dns-visibility", false, "report every DNS query and answer of local processes as an L7 flow (Hubble's l7.dns: query, types, rcode, addresses, TTL, CNAMEs, latency) with its process and pod, and give later flows to an answer's addresses its name (destination_names) for the answer's TTL, at least --dns-min-ttl; needs no DNS policy")
	f.StringVar(&cfg.NetpolDNS.PinDir, "dns-state-dir", datapath.DefaultPinDir, "toFQDNs: bpffs directory keeping the learned addresses across restarts (\"-\": not kept)")
	addHTTPFlags(f, &cfg.NetpolHTTP)
	return cmd
}
