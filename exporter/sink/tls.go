package sink

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLSFiles name the files of a TLS client configuration.
type TLSFiles struct {
	CAFile             string // PEM bundle that replaces the system roots
	CertFile, KeyFile  string // client certificate, both or neither
	InsecureSkipVerify bool
	ServerName         string
}

// ErrTLSFiles is wrapped by TLS configuration errors.
var ErrTLSFiles = errors.New("bad TLS files")

// Config builds a tls.Config, reading the files now.
func (f TLSFiles) Config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: f.InsecureSkipVerify, ServerName: f.ServerName}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: CA file: %w", ErrTLSFiles, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: CA file %s holds no PEM certificate", ErrTLSFiles, f.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (f.CertFile == "") != (f.KeyFile == "") {
		return nil, fmt.Errorf("%w: a client certificate needs both the certificate and the key file", ErrTLSFiles)
	}
	if f.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: client certificate: %w", ErrTLSFiles, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
