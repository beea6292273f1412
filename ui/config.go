package ui

import (
	"errors"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/vigilsec/vigil/apiauth"
	"github.com/vigilsec/vigil/hubble"
)

// Config is the agent's flow API and web UI.
type Config struct {
	// Addr is where the web UI listens; empty disables it.
	Addr string
	// HubbleAddr is where Hubble's Observer API listens; empty disables it.
	HubbleAddr string
	// FlowBuffer is the number of flows kept for both.
	FlowBuffer int
	// Auth authenticates clients of both (required beyond loopback).
	Auth apiauth.Config
}

// DefaultConfig serves both on loopback.
func DefaultConfig() Config {
	return Config{Addr: "127.0.0.1:12000", HubbleAddr: "127.0.0.1:4245", FlowBuffer: hubble.DefaultCapacity}
}

// Enabled reports whether anything is served.
func (c *Config) Enabled() bool { return c.Addr != "" || c.HubbleAddr != "" }

// Flags are the names of the auth flags, shared by the agent and the relay.
var Flags = apiauth.Flags{TokenFile: "--api-token-file", CertFile: "--api-tls-cert-file", KeyFile: "--api-tls-key-file",
	ClientCAFile: "--api-tls-client-ca-file"}

// AddFlags registers the flags of c on fs.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	d := DefaultConfig()
	fs.StringVar(&c.Addr, "ui-addr", d.Addr, "serve the web UI (service map, flows) here; empty disables it; beyond loopback it needs --api-token-file or --api-tls-client-ca-file")
	fs.StringVar(&c.HubbleAddr, "hubble-addr", d.HubbleAddr, "serve Hubble's Observer gRPC API here (hubble observe --server ...); empty disables it")
	fs.IntVar(&c.FlowBuffer, "flow-buffer", d.FlowBuffer, "flows kept for the UI and the Hubble API (a ring: the oldest go first)")
	AddAuthFlags(&c.Auth, fs)
}

// AddAuthFlags registers the API authentication flags bound to a.
func AddAuthFlags(a *apiauth.Config, fs *pflag.FlagSet) {
	fs.StringVar(&a.TokenFile, "api-token-file", "", "file holding the bearer token the UI and APIs require (re-read when it changes)")
	fs.StringVar(&a.CertFile, "api-tls-cert-file", "", "PEM certificate the UI and APIs serve TLS with (re-read when it changes)")
	fs.StringVar(&a.KeyFile, "api-tls-key-file", "", "PEM key of --api-tls-cert-file")
	fs.StringVar(&a.ClientCAFile, "api-tls-client-ca-file", "", "PEM CA bundle: require client certificates it signed (mTLS)")
}

// Validate checks the options, naming the flag of each problem.
func (c *Config) Validate() error {
	var errs []error
	if c.FlowBuffer < 1 || c.FlowBuffer > 1<<24 {
		errs = append(errs, fmt.Errorf("--flow-buffer: %d is out of range (1 to %d)", c.FlowBuffer, 1<<24))
	}
	if c.Addr != "" && c.Addr == c.HubbleAddr {
		errs = append(errs, fmt.Errorf("--ui-addr and --hubble-addr: both are %s", c.Addr))
	}
	if err := c.Auth.Validate(Flags, apiauth.Listener{Flag: "--ui-addr", Addr: c.Addr},
		apiauth.Listener{Flag: "--hubble-addr", Addr: c.HubbleAddr}); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
