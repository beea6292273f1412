package apiauth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// SessionCookie is the cookie the web UI's sign-in sets: a keyed hash of the
// token, never the token itself.
const SessionCookie = "vigil_session"

// Authenticator checks clients against a Config.
type Authenticator struct {
	cfg   Config
	token *watched[[]byte]
	cert  *watched[*tls.Certificate]
	ca    *watched[*x509.CertPool]
}

// New reads the files of cfg (errors name the file and what is wrong).
func New(cfg Config) (*Authenticator, error) {
	a := &Authenticator{cfg: cfg}
	var err error
	if cfg.TokenFile != "" {
		if a.token, err = newWatched(parseToken(cfg.TokenFile), cfg.TokenFile); err != nil {
			return nil, fmt.Errorf("token: %w", err)
		}
	}
	if cfg.CertFile != "" {
		if a.cert, err = newWatched(parseKeyPair(cfg.CertFile, cfg.KeyFile), cfg.CertFile, cfg.KeyFile); err != nil {
			return nil, fmt.Errorf("TLS: %w", err)
		}
	}
	if cfg.ClientCAFile != "" {
		if a.ca, err = newWatched(parsePool(cfg.ClientCAFile), cfg.ClientCAFile); err != nil {
			return nil, fmt.Errorf("client CA: %w", err)
		}
	}
	return a, nil
}

// ServerTLS returns the TLS configuration of the API, or nil without TLS.
// Certificates and client CAs are re-read when their files change.
func (a *Authenticator) ServerTLS() *tls.Config {
	if a.cert == nil {
		return nil
	}
	base := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return a.cert.get()
		},
	}
	if a.ca == nil {
		return base
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			pool, err := a.ca.get()
			if err != nil {
				return nil, err
			}
			c := base.Clone()
			c.ClientCAs = pool
			c.ClientAuth = tls.RequireAndVerifyClientCert
			if a.token != nil {
				// Token holders (a browser) need no certificate.
				c.ClientAuth = tls.VerifyClientCertIfGiven
			}
			return c, nil
		},
	}
}

// Listen listens on addr, with TLS when configured.
func (a *Authenticator) Listen(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if t := a.ServerTLS(); t != nil {
		return tls.NewListener(l, t), nil
	}
	return l, nil
}

// SessionValue is the session cookie's value for the current token.
func (a *Authenticator) SessionValue() (string, error) {
	tok, err := a.token.get()
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, tok)
	m.Write([]byte("vigil-ui-session"))
	return hex.EncodeToString(m.Sum(nil)), nil
}

// CheckToken reports whether tok is the current token.
func (a *Authenticator) CheckToken(tok string) bool {
	if a.token == nil {
		return false
	}
	want, err := a.token.get()
	return err == nil && subtle.ConstantTimeCompare(want, []byte(tok)) == 1
}

// UsesToken reports whether clients may sign in with a token.
func (a *Authenticator) UsesToken() bool { return a.token != nil }

func verifiedCert(cs *tls.ConnectionState) bool {
	return cs != nil && len(cs.VerifiedChains) > 0
}

// Allowed reports whether r comes from an authenticated client: a verified
// client certificate, the bearer token, or the session cookie. With no
// authentication configured every request is allowed (the API listens on
// loopback only, see Validate).
func (a *Authenticator) Allowed(r *http.Request) bool {
	if !a.cfg.Authenticated() {
		return true
	}
	if a.ca != nil && verifiedCert(r.TLS) {
		return true
	}
	if a.token == nil {
		return false
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && a.CheckToken(tok) {
		return true
	}
	if c, err := r.Cookie(SessionCookie); err == nil {
		want, err := a.SessionValue()
		return err == nil && subtle.ConstantTimeCompare([]byte(want), []byte(c.Value)) == 1
	}
	return false
}

// GRPCOptions returns the server options of a gRPC API: TLS credentials and
// interceptors that require the token or a client certificate.
func (a *Authenticator) GRPCOptions() []grpc.ServerOption {
	var opts []grpc.ServerOption
	if t := a.ServerTLS(); t != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(t)))
	}
	if !a.cfg.Authenticated() {
		return opts
	}
	return append(opts,
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := a.checkGRPC(ctx); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := a.checkGRPC(ss.Context()); err != nil {
				return err
			}
			return h(srv, ss)
		}))
}

func (a *Authenticator) checkGRPC(ctx context.Context) error {
	if p, ok := peer.FromContext(ctx); ok && a.ca != nil {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && verifiedCert(&ti.State) {
			return nil
		}
	}
	if a.token != nil {
		md, _ := metadata.FromIncomingContext(ctx)
		for _, v := range md.Get("authorization") {
			if tok, ok := strings.CutPrefix(v, "Bearer "); ok && a.CheckToken(tok) {
				return nil
			}
		}
	}
	return status.Error(codes.Unauthenticated, "a client certificate or the bearer token is required")
}
