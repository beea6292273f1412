package identity

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Kubernetes modes of Config.Kubernetes.
const (
	KubernetesAuto = "auto" // in a cluster (or with --kubeconfig): on; elsewhere: off
	KubernetesOn   = "on"   // required: the agent refuses to start without it
	KubernetesOff  = "off"
)

// CRINone as the only --cri-endpoint turns the CRI source off.
const CRINone = "none"

// Defaults of Config.
const (
	DefaultCRIPollInterval      = 2 * time.Second
	DefaultCRITimeout           = 5 * time.Second
	DefaultCgroupRescanInterval = 30 * time.Second
	DefaultLookupWorkers        = 4
	DefaultLookupRate           = 50
	DefaultHoldTimeout          = 500 * time.Millisecond
	DefaultHoldMax              = 4096
	DefaultKubeResync           = 10 * time.Minute
)

// Config selects the sources of workload metadata and tunes the resolver.
// AddFlags binds it to command-line flags; Validate names the flag of any
// bad value.
type Config struct {
	// CRIEndpoints are container runtime sockets (a path or
	// unix:///path). Empty: the usual containerd and CRI-O sockets that
	// exist. [CRINone]: no CRI source.
	CRIEndpoints []string
	// CRIPollInterval is how often a runtime without container events is
	// listed.
	CRIPollInterval time.Duration
	// CRITimeout bounds each call to a runtime.
	CRITimeout time.Duration

	// Kubernetes is auto, on or off; see the Kubernetes* constants.
	Kubernetes string
	// Kubeconfig is a kubeconfig file; empty means the in-cluster
	// configuration (the pod's service account).
	Kubeconfig string
	// NodeName is this node's name: only its pods are watched. The agent
	// sets it from its own --node-name; empty means $NODE_NAME, then the
	// host name.
	NodeName string
	// KubeResync is the informers' resync period.
	KubeResync time.Duration

	// WorkloadFiles are files (or directories of *.yaml files) of
	// vigil.dev/v1alpha1 Workload documents, watched for changes.
	WorkloadFiles []string

	// CgroupRescanInterval is how often the cgroup tree is walked again
	// to forget removed cgroups and find missed ones.
	CgroupRescanInterval time.Duration
	// LookupWorkers bounds concurrent lookups of unknown containers.
	LookupWorkers int
	// LookupRate bounds lookups of unknown containers per second.
	LookupRate float64

	// HoldTimeout and HoldMax are for the caller of PodForCgroup: how long
	// and how many events it may hold while their pod is pending, before
	// emitting them without pod.
	HoldTimeout time.Duration
	HoldMax     int
}

// DefaultConfig returns the configuration with no flags set.
func DefaultConfig() Config {
	return Config{
		CRIPollInterval:      DefaultCRIPollInterval,
		CRITimeout:           DefaultCRITimeout,
		Kubernetes:           KubernetesAuto,
		KubeResync:           DefaultKubeResync,
		CgroupRescanInterval: DefaultCgroupRescanInterval,
		LookupWorkers:        DefaultLookupWorkers,
		LookupRate:           DefaultLookupRate,
		HoldTimeout:          DefaultHoldTimeout,
		HoldMax:              DefaultHoldMax,
	}
}

// AddFlags binds the configuration to flags, with the defaults of
// DefaultConfig. The node name is not among them: the agent's --node-name
// sets NodeName.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	d := DefaultConfig()
	fs.StringArrayVar(&c.CRIEndpoints, "cri-endpoint", nil, `container runtime socket for pod metadata (repeatable; default: the containerd and CRI-O sockets that exist; "none" for no runtime)`)
	fs.DurationVar(&c.CRIPollInterval, "cri-poll-interval", d.CRIPollInterval, "how often to list a runtime that offers no container events")
	fs.DurationVar(&c.CRITimeout, "cri-timeout", d.CRITimeout, "timeout of one call to the container runtime")
	fs.StringVar(&c.Kubernetes, "kubernetes", d.Kubernetes, `read pods, owners and namespaces from the Kubernetes API: auto (when in a cluster or given --kubeconfig), on or off`)
	fs.StringVar(&c.Kubeconfig, "kubeconfig", "", "kubeconfig file for the Kubernetes API (default: the in-cluster service account)")
	fs.DurationVar(&c.KubeResync, "kube-resync", d.KubeResync, "resync period of the Kubernetes informers")
	fs.StringArrayVar(&c.WorkloadFiles, "workloads", nil, "file or directory of vigil.dev/v1alpha1 Workload documents naming cgroups as workloads, watched for changes (repeatable)")
	fs.DurationVar(&c.CgroupRescanInterval, "cgroup-rescan-interval", d.CgroupRescanInterval, "how often to walk the cgroup tree again")
	fs.IntVar(&c.LookupWorkers, "identity-lookup-workers", d.LookupWorkers, "most concurrent lookups of containers not known yet")
	fs.Float64Var(&c.LookupRate, "identity-lookup-rate", d.LookupRate, "most lookups of containers not known yet, per second")
	fs.DurationVar(&c.HoldTimeout, "identity-hold", d.HoldTimeout, "how long an event may wait for the pod of a container that just started (0: never wait)")
	fs.IntVar(&c.HoldMax, "identity-hold-max", d.HoldMax, "most events waiting for their pod at once; more are sent without pod")
}

// Validate checks the configuration and returns one error per problem,
// each naming its flag.
func (c *Config) Validate() error {
	var errs []error
	bad := func(flag, format string, args ...any) {
		errs = append(errs, fmt.Errorf("--%s: %s", flag, fmt.Sprintf(format, args...)))
	}
	for _, e := range c.CRIEndpoints {
		switch {
		case e == CRINone:
			if len(c.CRIEndpoints) > 1 {
				bad("cri-endpoint", "%q cannot be combined with other endpoints", CRINone)
			}
		case strings.HasPrefix(e, "unix:///"), strings.HasPrefix(e, "/"):
		default:
			bad("cri-endpoint", "%q: want a socket path (/run/containerd/containerd.sock) or unix:///path", e)
		}
	}
	if c.CRIPollInterval < 100*time.Millisecond {
		bad("cri-poll-interval", "%v is too short (at least 100ms)", c.CRIPollInterval)
	}
	if c.CRITimeout <= 0 {
		bad("cri-timeout", "%v must be positive", c.CRITimeout)
	}
	switch c.Kubernetes {
	case KubernetesAuto, KubernetesOn, KubernetesOff:
	default:
		bad("kubernetes", "%q: want auto, on or off", c.Kubernetes)
	}
	if c.Kubeconfig != "" {
		if _, err := os.Stat(c.Kubeconfig); err != nil {
			bad("kubeconfig", "%v", err)
		}
		if c.Kubernetes == KubernetesOff {
			bad("kubeconfig", "given with --kubernetes=off")
		}
	}
	if c.KubeResync < 0 {
		bad("kube-resync", "%v must not be negative", c.KubeResync)
	}
	for _, f := range c.WorkloadFiles {
		if _, err := os.Stat(f); err != nil {
			bad("workloads", "%v", err)
		}
	}
	if c.CgroupRescanInterval < time.Second {
		bad("cgroup-rescan-interval", "%v is too short (at least 1s)", c.CgroupRescanInterval)
	}
	if c.LookupWorkers < 1 || c.LookupWorkers > 64 {
		bad("identity-lookup-workers", "%d is out of range (1 to 64)", c.LookupWorkers)
	}
	if c.LookupRate <= 0 {
		bad("identity-lookup-rate", "%v must be positive", c.LookupRate)
	}
	if c.HoldTimeout < 0 || c.HoldTimeout > 10*time.Second {
		bad("identity-hold", "%v is out of range (0 to 10s)", c.HoldTimeout)
	}
	if c.HoldMax < 0 {
		bad("identity-hold-max", "%d must not be negative", c.HoldMax)
	}
	return errors.Join(errs...)
}

// nodeName returns the configured node name or the environment's.
func (c *Config) nodeName() string {
	if c.NodeName != "" {
		return c.NodeName
	}
	if n := os.Getenv("NODE_NAME"); n != "" {
		return n
	}
	h, _ := os.Hostname()
	return h
}
