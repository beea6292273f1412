package agent

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/vigilsec/vigil/exporter"
	"github.com/vigilsec/vigil/flows"
	"github.com/vigilsec/vigil/identity"
	"github.com/vigilsec/vigil/kprobes"
	"github.com/vigilsec/vigil/process"
	"github.com/vigilsec/vigil/rules"
	"github.com/vigilsec/vigil/tracingsensor"
	"github.com/vigilsec/vigil/ui"
)

// Config is everything `vigil agent` can be told. Flags and the config file
// fill it; Validate names the flag of any bad value.
type Config struct {
	// NodeName is reported in every event and is part of every exec id.
	NodeName string
	// RingBufferSize is the event ring buffer's size in bytes.
	RingBufferSize uint64
	// ProcessCacheSize bounds the process cache (live and recently exited
	// processes) and the kernel's process table; 0 sizes them for the
	// node (process.NodeMaxEntries).
	ProcessCacheSize int
	// ExecEnv are the environment variables reported at exec
	// (process.environment_variables); empty turns reading the
	// environment off.
	ExecEnv []string
	// MetricsAddr is where /metrics, /healthz and /readyz are served; empty
	// disables the server.
	MetricsAddr string
	// PprofAddr, when set, serves Go's profiles (/debug/pprof/) on a
	// loopback address, for profiling the agent on a node.
	PprofAddr string
	// SocketPath is the control socket (vigil policy list, vigil events).
	SocketPath string
	// ExecFilter drops exec and exit events in the kernel.
	ExecFilter ExecFilter
	// RawTracepoints forces the raw tracepoint fallback of the process
	// sensor (for testing the fallback on kernels with tp_btf).
	RawTracepoints bool
	// ProcRoot is where /proc is mounted (tests may point elsewhere).
	ProcRoot string
	// Export configures the sinks and the shaping of the event stream.
	Export exporter.Config
	// Policies are tracing policy files or directories, watched for
	// changes.
	Policies []string
	// NoDefaultPolicies turns the embedded default policies off.
	NoDefaultPolicies bool
	// Flows says which moments of a connection are reported: off, start
	// or start-end.
	Flows string
	// FlowRepeats says what happens to connections that repeat one
	// already reported (same process, service and addresses): fold,
	// rate-limit=DURATION or report-all.
	FlowRepeats string
	// Identity configures where pod and container metadata come from.
	Identity identity.Config
	// Rules configures the detection rules run over the event stream.
	Rules rules.Config
	// KubernetesTracingPolicies follows TracingPolicy objects in the
	// cluster (when the Kubernetes API is used).
	KubernetesTracingPolicies bool
	// KubernetesNetworkPolicies enforces the cluster's NetworkPolicy and
	// CiliumNetworkPolicy objects (when the Kubernetes API is used).
	KubernetesNetworkPolicies bool
	// BPFStats turns the kernel's BPF run-time statistics on while the
	// agent runs (it adds two clock reads to every program run).
	BPFStats bool
	// NetworkPolicies are files or directories of NetworkPolicy and
	// CiliumNetworkPolicy documents to enforce (and watch); none leaves
	// the network policy datapath unloaded.
	NetworkPolicies []string
	// NetpolDNS configures what the datapath learns from DNS answers for
	// toFQDNs rules.
	NetpolDNS NetpolDNS
	// NetpolHTTP configures the HTTP proxy of rules.http and
	// --http-visibility.
	NetpolHTTP NetpolHTTP
	// UI is the web UI and Hubble's Observer API over the node's flows.
	UI ui.Config
	// ProtectBinaries are programs (names looked up in $PATH and the
	// system directories, or absolute paths; glob patterns allowed) whose
	// processes policies never kill or deny unless a selector names them
	// exactly and its policy sets allow-protected-enforcement.
	ProtectBinaries []string
	// KeepEnforcementOnExit pins the programs that enforce tracing
	// policies (and the process sensor they depend on) under BPFPinDir, so
	// that they keep enforcing when the agent exits or is killed; the next
	// agent takes them over without a gap. Off: a start removes what an
	// earlier run pinned, once its own policies are loaded.
	KeepEnforcementOnExit bool
	// BPFPinDir is the directory on a BPF file system for
	// KeepEnforcementOnExit (one is mounted there if there is none).
	BPFPinDir string
}

// ExecFilter selects processes whose exec and exit events are dropped in the
// kernel, before they reach user space.
type ExecFilter struct {
	// CgroupPaths are cgroup v2 paths (as /proc/PID/cgroup shows them);
	// processes directly in them are not reported.
	CgroupPaths []string
	// PidNamespaces are pid namespace inode numbers, or "host" for the
	// host's.
	PidNamespaces []string
	// Binaries are exact executable paths.
	Binaries []string
}

// DefaultConfig returns the configuration of `vigil agent` with no flags.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	if n := os.Getenv("NODE_NAME"); n != "" {
		host = n
	}
	return Config{
		NodeName:         host,
		RingBufferSize:   process.DefaultRingBufferSize,
		ProcessCacheSize: 0, // derived from the node
		ExecEnv:          slices.Clone(process.DefaultExecEnv),
		MetricsAddr:      "127.0.0.1:2112",
		SocketPath:       "/run/vigil/vigil.sock",
		ProcRoot:         "/proc",
		Export:           exporter.DefaultConfig(),
		Flows:            "start",
		FlowRepeats:      "fold",

		KubernetesTracingPolicies: true,
		Identity:                  identity.DefaultConfig(),
		Rules:                     rules.DefaultConfig(),
		UI:                        ui.DefaultConfig(),
		ProtectBinaries:           append([]string(nil), tracingsensor.DefaultProtectedBinaries...),
		BPFPinDir:                 kprobes.DefaultPinDir,
	}
}

// Validate checks every option and returns one error per problem, each
// naming its flag.
func (c *Config) Validate() error {
	var errs []error
	if c.NodeName == "" {
		errs = append(errs, errors.New("--node-name: must not be empty (the host name could not be read)"))
	}
	if c.NetpolDNS.MinTTL != 0 && c.NetpolDNS.MinTTL < time.Second {
		errs = append(errs, fmt.Errorf("--dns-min-ttl: %s is below one second (answers' TTLs count in seconds)", c.NetpolDNS.MinTTL))
	}
	if len(c.NetpolHTTP.Visibility) > 0 && len(c.NetworkPolicies) == 0 && !c.KubernetesNetworkPolicies {
		errs = append(errs, errors.New("--http-visibility: needs the network policy datapath (--network-policy or --kubernetes-network-policies)"))
	}
	if err := process.ValidateRingBufferSize(c.RingBufferSize); err != nil {
		errs = append(errs, fmt.Errorf("--ringbuf-size: %w", err))
	}
	if c.ProcessCacheSize != 0 && (c.ProcessCacheSize < 64 || c.ProcessCacheSize > 1<<22) {
		errs = append(errs, fmt.Errorf("--process-cache-size: %d is out of range (64 to %d, or 0 for the node's size)", c.ProcessCacheSize, 1<<22))
	}
	for _, h := range c.NetpolHTTP.Headers {
		if !httpguts.ValidHeaderFieldName(h) {
			errs = append(errs, fmt.Errorf("--http-headers: %q is not an HTTP header name (a token: letters, digits and !#$%%&'*+-.^_`|~)", h))
		}
	}
	if err := process.ValidateEnvNames(c.ExecEnv); err != nil {
		errs = append(errs, fmt.Errorf("--exec-env: %w", err))
	}
	if _, err := tracingsensor.ResolveBinaries(c.ProtectBinaries, ""); err != nil {
		errs = append(errs, fmt.Errorf("--protect-binaries: %w", err))
	}
	for _, ns := range c.ExecFilter.PidNamespaces {
		if ns == "host" {
			continue
		}
		if _, err := strconv.ParseUint(ns, 10, 32); err != nil {
			errs = append(errs, fmt.Errorf("--exec-filter-pidns: %q is neither \"host\" nor a namespace inode number", ns))
		}
	}
	for _, p := range c.ExecFilter.CgroupPaths {
		if !strings.HasPrefix(p, "/") {
			errs = append(errs, fmt.Errorf("--exec-filter-cgroup: %q must be an absolute cgroup path such as /system.slice/cron.service", p))
		}
	}
	for _, b := range c.ExecFilter.Binaries {
		if !strings.HasPrefix(b, "/") || len(b) > 255 {
			errs = append(errs, fmt.Errorf("--exec-filter-binary: %q must be an absolute path of at most 255 bytes", b))
		}
	}
	if _, err := flows.ParseReport(c.Flows); err != nil {
		errs = append(errs, fmt.Errorf("--flows: %w", err))
	}
	if _, err := flows.ParseRepeats(c.FlowRepeats); err != nil {
		errs = append(errs, fmt.Errorf("--flow-repeats: %w", err))
	}
	c.Identity.NodeName = c.NodeName
	if err := c.Identity.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Export.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Rules.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.PprofAddr != "" {
		if err := loopbackAddr(c.PprofAddr); err != nil {
			errs = append(errs, fmt.Errorf("--pprof-addr: %w", err))
		}
	}
	if err := c.UI.Validate(); err != nil {
		errs = append(errs, err)
	}
	if !filepath.IsAbs(c.BPFPinDir) || filepath.Clean(c.BPFPinDir) == "/" {
		errs = append(errs, fmt.Errorf("--bpf-pin-dir: %q must be an absolute path of a directory (such as %s)", c.BPFPinDir, kprobes.DefaultPinDir))
	}
	if c.SocketPath != "" && !strings.HasPrefix(c.SocketPath, "/") {
		errs = append(errs, fmt.Errorf("--socket: %q must be an absolute path", c.SocketPath))
	}
	return errors.Join(errs...)
}

// ParseSize parses a byte size such as 8388608, 8Mi, 8M or 512Ki.
func ParseSize(s string) (uint64, error) {
	mult := uint64(1)
	num := s
	for _, u := range []struct {
		suffix string
		mult   uint64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}} {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a size (examples: 8388608, 8Mi, 512Ki)", s)
	}
	if n > (1<<63)/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}

// loopbackAddr checks that addr is host:port with a loopback host: profiles
// reveal memory contents and must not be served beyond the node.
func loopbackAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("%q: profiles are served on a loopback address only (such as 127.0.0.1:6060)", addr)
	}
	return nil
}
