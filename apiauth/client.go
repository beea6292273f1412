package apiauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// ClientConfig is how a client (the relay) authenticates to an API and
// checks the API's certificate.
type ClientConfig struct {
	// CAFile verifies the server's certificate; without it the connection
	// is plain text.
	CAFile string
	// CertFile and KeyFile are the client's certificate (for mTLS).
	CertFile, KeyFile string
	// ServerName is the name the server's certificate must carry; empty:
	// the host of the address dialled.
	ServerName string
	// TokenFile holds a bearer token sent with every call.
	TokenFile string
}

// DialOptions returns the gRPC dial options of c. Files are re-read when
// they change, so rotated certificates are used for new connections.
func (c ClientConfig) DialOptions() ([]grpc.DialOption, error) {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, errors.New("client certificate and key: give both or neither")
	}
	if c.CAFile == "" {
		if c.CertFile != "" || c.TokenFile != "" {
			return nil, errors.New("a client certificate or token needs TLS: give the CA file that verifies the server")
		}
		return []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, nil
	}
	ca, err := newWatched(parsePool(c.CAFile), c.CAFile)
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	t := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The chain is verified in VerifyConnection against the CA file as
		// it is now, so that a rotated CA applies without a restart.
		InsecureSkipVerify: true,
		ServerName:         c.ServerName,
		VerifyConnection: func(cs tls.ConnectionState) error {
			pool, err := ca.get()
			if err != nil {
				return err
			}
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, ic := range cs.PeerCertificates[1:] {
				inter.AddCert(ic)
			}
			_, err = cs.PeerCertificates[0].Verify(x509.VerifyOptions{
				Roots: pool, Intermediates: inter, DNSName: cs.ServerName,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			return err
		},
	}
	if c.CertFile != "" {
		cert, err := newWatched(parseKeyPair(c.CertFile, c.KeyFile), c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		t.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert.get() }
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(t))}
	if c.TokenFile != "" {
		tok, err := newWatched(parseToken(c.TokenFile), c.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("token: %w", err)
		}
		opts = append(opts, grpc.WithPerRPCCredentials(tokenCreds{tok}))
	}
	return opts, nil
}

type tokenCreds struct{ tok *watched[[]byte] }

func (t tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	v, err := t.tok.get()
	if err != nil {
		return nil, err
	}
	return map[string]string{"authorization": "Bearer " + string(v)}, nil
}

func (tokenCreds) RequireTransportSecurity() bool { return true }

var _ credentials.PerRPCCredentials = tokenCreds{}
