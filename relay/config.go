package relay

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/vigilsec/vigil/apiauth"
	"github.com/vigilsec/vigil/hubble"
	"github.com/vigilsec/vigil/ui"
)

// Config is everything `vigil relay` can be told.
type Config struct {
	// Addr serves the web UI; HubbleAddr the Observer API. Empty disables.
	Addr, HubbleAddr string
	// FlowBuffer is the number of flows the relay keeps.
	FlowBuffer int
	// Auth authenticates the relay's own clients.
	Auth apiauth.Config

	// Peers are agents given as NAME=HOST:PORT (or HOST:PORT, named by
	// their address); with none, peers are discovered in Kubernetes.
	Peers []string
	// Kubeconfig, Namespace and Selector find the agents' pods: their
	// node is the peer's name, their IP with PeerPort its address.
	Kubeconfig, Namespace, Selector string
	PeerPort                        int
	// PeerTLS is how the relay connects to agents.
	PeerTLS apiauth.ClientConfig
}

// DefaultConfig serves the UI and the Observer API on every address, as a
// Deployment does behind a Service; authentication is then required.
func DefaultConfig() Config {
	return Config{Addr: ":12000", HubbleAddr: ":4245", FlowBuffer: 4 * hubble.DefaultCapacity,
		Namespace: "vigil", Selector: "app.kubernetes.io/name=vigil", PeerPort: 4244}
}

// AddFlags registers the relay's flags on fs.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	d := DefaultConfig()
	fs.StringVar(&c.Addr, "ui-addr", d.Addr, "serve the cluster's web UI here (empty disables it)")
	fs.StringVar(&c.HubbleAddr, "hubble-addr", d.HubbleAddr, "serve Hubble's Observer API for the cluster here (empty disables it)")
	fs.IntVar(&c.FlowBuffer, "flow-buffer", d.FlowBuffer, "flows of all nodes kept (a ring: the oldest go first)")
	ui.AddAuthFlags(&c.Auth, fs)
	fs.StringArrayVar(&c.Peers, "peer", nil, "an agent's Observer API as NAME=HOST:PORT (repeatable); without it agents are found in Kubernetes")
	fs.StringVar(&c.Kubeconfig, "kubeconfig", "", "kubeconfig for finding agents (default: in-cluster)")
	fs.StringVar(&c.Namespace, "peer-namespace", d.Namespace, "namespace of the agents' pods")
	fs.StringVar(&c.Selector, "peer-selector", d.Selector, "label selector of the agents' pods")
	fs.IntVar(&c.PeerPort, "peer-port", d.PeerPort, "port of the agents' Observer API (their --hubble-addr)")
	fs.StringVar(&c.PeerTLS.CAFile, "peer-tls-ca-file", "", "PEM CA bundle verifying the agents' certificates (without it: plain text)")
	fs.StringVar(&c.PeerTLS.CertFile, "peer-tls-cert-file", "", "PEM client certificate the relay presents to agents")
	fs.StringVar(&c.PeerTLS.KeyFile, "peer-tls-key-file", "", "PEM key of --peer-tls-cert-file")
	fs.StringVar(&c.PeerTLS.ServerName, "peer-tls-server-name", "vigil-agent", "name the agents' certificates carry")
}

// Peer is one agent's Observer API.
type Peer struct {
	Name, Address string
}

// staticPeers parses --peer values.
func (c *Config) staticPeers() ([]Peer, error) {
	var out []Peer
	var errs []error
	seen := map[string]bool{}
	for _, p := range c.Peers {
		name, addr, ok := strings.Cut(p, "=")
		if !ok {
			name, addr = p, p
		}
		if _, _, err := net.SplitHostPort(addr); err != nil || name == "" {
			errs = append(errs, fmt.Errorf("--peer %q: want NAME=HOST:PORT", p))
			continue
		}
		if seen[name] {
			errs = append(errs, fmt.Errorf("--peer %q: the name %s is given twice", p, name))
			continue
		}
		seen[name] = true
		out = append(out, Peer{Name: name, Address: addr})
	}
	return out, errors.Join(errs...)
}

// Validate checks the options, naming the flag of each problem.
func (c *Config) Validate() error {
	var errs []error
	if c.Addr == "" && c.HubbleAddr == "" {
		errs = append(errs, errors.New("--ui-addr and --hubble-addr: the relay must serve at least one of them"))
	}
	if c.FlowBuffer < 1 || c.FlowBuffer > 1<<24 {
		errs = append(errs, fmt.Errorf("--flow-buffer: %d is out of range (1 to %d)", c.FlowBuffer, 1<<24))
	}
	if err := c.Auth.Validate(ui.Flags, apiauth.Listener{Flag: "--ui-addr", Addr: c.Addr},
		apiauth.Listener{Flag: "--hubble-addr", Addr: c.HubbleAddr}); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.staticPeers(); err != nil {
		errs = append(errs, err)
	}
	if len(c.Peers) == 0 {
		if _, err := labels.Parse(c.Selector); err != nil {
			errs = append(errs, fmt.Errorf("--peer-selector: %w", err))
		}
		if c.PeerPort < 1 || c.PeerPort > 65535 {
			errs = append(errs, fmt.Errorf("--peer-port: %d is not a port", c.PeerPort))
		}
	}
	if (c.PeerTLS.CertFile == "") != (c.PeerTLS.KeyFile == "") {
		errs = append(errs, errors.New("--peer-tls-cert-file and --peer-tls-key-file: give both or neither"))
	}
	if c.PeerTLS.CertFile != "" && c.PeerTLS.CAFile == "" {
		errs = append(errs, errors.New("--peer-tls-cert-file: a client certificate needs TLS: give --peer-tls-ca-file"))
	}
	return errors.Join(errs...)
}
