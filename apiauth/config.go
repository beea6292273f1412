package apiauth

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Config is how an API authenticates its clients and itself.
type Config struct {
	// TokenFile holds the bearer token clients must send
	// (Authorization: Bearer TOKEN); re-read when it changes.
	TokenFile string
	// CertFile and KeyFile are the server's TLS certificate and key; with
	// them the API speaks TLS.
	CertFile, KeyFile string
	// ClientCAFile, with CertFile and KeyFile, makes the API require client
	// certificates signed by these CAs (mTLS).
	ClientCAFile string
}

// Flags name the command-line flags of a Config, for error messages.
type Flags struct {
	TokenFile, CertFile, KeyFile, ClientCAFile string
}

// TLS reports whether the API speaks TLS.
func (c Config) TLS() bool { return c.CertFile != "" }

// Authenticated reports whether clients must prove who they are.
func (c Config) Authenticated() bool { return c.TokenFile != "" || c.ClientCAFile != "" }

// Listener is an address an API listens on and the flag that set it.
type Listener struct {
	Flag, Addr string
}

// Validate checks the combination of options for APIs listening on each
// of ls (empty addresses are skipped): TLS needs both files, client CAs need
// TLS, and a listener beyond loopback needs a token or client certificates.
func (c Config) Validate(f Flags, ls ...Listener) error {
	var errs []error
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, fmt.Errorf("%s and %s: give both or neither", f.CertFile, f.KeyFile))
	}
	if c.ClientCAFile != "" && c.CertFile == "" {
		errs = append(errs, fmt.Errorf("%s: client certificates need TLS: give %s and %s too", f.ClientCAFile, f.CertFile, f.KeyFile))
	}
	if c.TokenFile != "" && c.CertFile == "" {
		for _, l := range ls {
			if l.Addr != "" && !IsLoopback(l.Addr) {
				errs = append(errs, fmt.Errorf("%s: a bearer token over plain text to %s %s can be read on the network: give %s and %s too", f.TokenFile, l.Flag, l.Addr, f.CertFile, f.KeyFile))
			}
		}
	}
	for _, l := range ls {
		if l.Addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(l.Addr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not host:port: %w", l.Flag, l.Addr, err))
			continue
		}
		if !IsLoopback(l.Addr) && !c.Authenticated() {
			errs = append(errs, fmt.Errorf("%s %s: beyond loopback the API requires authentication: give %s, or %s with %s and %s", l.Flag, l.Addr, f.TokenFile, f.ClientCAFile, f.CertFile, f.KeyFile))
		}
	}
	return errors.Join(errs...)
}

// IsLoopback reports whether the listen address host:port only accepts
// connections from this machine (127.0.0.0/8, ::1, localhost).
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
