package apiauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/vigilsec/vigil/internal/testcerts"
)

var flags = Flags{TokenFile: "--api-token-file", CertFile: "--api-tls-cert-file", KeyFile: "--api-tls-key-file", ClientCAFile: "--api-tls-client-ca-file"}

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		addrs []string // of --ui-addr
		want  string   // "" for valid
	}{
		{"loopback without auth", Config{}, []string{"127.0.0.1:12000", "[::1]:4244", "localhost:1"}, ""},
		{"all addresses without auth", Config{}, []string{"0.0.0.0:12000"}, "--ui-addr 0.0.0.0:12000: beyond loopback the API requires authentication"},
		{"token with TLS", Config{TokenFile: "t", CertFile: "c", KeyFile: "k"}, []string{":12000"}, ""},
		{"token in plain text", Config{TokenFile: "t"}, []string{":12000"}, "--api-token-file: a bearer token over plain text"},
		{"token in plain text on loopback", Config{TokenFile: "t"}, []string{"127.0.0.1:1"}, ""},
		{"mTLS", Config{ClientCAFile: "ca", CertFile: "c", KeyFile: "k"}, []string{"10.0.0.1:4244"}, ""},
		{"cert without key", Config{CertFile: "c"}, nil, "--api-tls-cert-file and --api-tls-key-file: give both or neither"},
		{"client CA without TLS", Config{ClientCAFile: "ca"}, nil, "--api-tls-client-ca-file: client certificates need TLS"},
		{"bad address", Config{}, []string{"12000"}, `--ui-addr: "12000" is not host:port`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ls []Listener
			for _, a := range tt.addrs {
				ls = append(ls, Listener{"--ui-addr", a})
			}
			err := tt.cfg.Validate(flags, ls...)
			if tt.want == "" && err != nil {
				t.Errorf("error %v, want none", err)
			}
			if tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	notPEM := filepath.Join(dir, "ca.crt")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{TokenFile: empty}, "token file " + empty + " is empty"},
		{Config{TokenFile: filepath.Join(dir, "missing")}, "no such file"},
		{Config{CertFile: notPEM, KeyFile: notPEM}, "certificate " + notPEM + " with key"},
		{Config{ClientCAFile: notPEM}, "CA file " + notPEM + " holds no PEM certificate"},
	} {
		if _, err := New(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v): %v, want an error containing %q", tt.cfg, err, tt.want)
		}
	}
}

func writeToken(t *testing.T, dir, tok string) string {
	p := filepath.Join(dir, "token")
	if err := os.WriteFile(p+".tmp", []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHTTPToken(t *testing.T) {
	dir := t.TempDir()
	a, err := New(Config{TokenFile: writeToken(t, dir, "s3cret")})
	if err != nil {
		t.Fatal(err)
	}
	req := func(h, cookie string) *http.Request {
		r, _ := http.NewRequest("GET", "/", nil)
		if h != "" {
			r.Header.Set("Authorization", h)
		}
		if cookie != "" {
			r.AddCookie(&http.Cookie{Name: SessionCookie, Value: cookie})
		}
		return r
	}
	session, _ := a.SessionValue()
	for _, tt := range []struct {
		name         string
		header, cook string
		want         bool
	}{
		{"no credentials", "", "", false},
		{"bearer token", "Bearer s3cret", "", true},
		{"wrong token", "Bearer s3cre", "", false},
		{"basic auth", "Basic czNjcmV0", "", false},
		{"session cookie", "", session, true},
		{"forged cookie", "", strings.Repeat("0", 64), false},
	} {
		if got := a.Allowed(req(tt.header, tt.cook)); got != tt.want {
			t.Errorf("%s: allowed %v, want %v", tt.name, got, tt.want)
		}
	}
	// A rotated token applies within a second; the old one and its
	// session stop working.
	writeToken(t, dir, "n3w-token")
	time.Sleep(recheck + 100*time.Millisecond)
	if a.Allowed(req("Bearer s3cret", "")) || a.Allowed(req("", session)) || !a.Allowed(req("Bearer n3w-token", "")) {
		t.Error("the rotated token did not replace the old one")
	}
}

// mTLS on a gRPC API: a client with a certificate of the CA gets in; one
// without a certificate, or with one of another CA, does not; a rotated
// server certificate is served to new connections.
func TestGRPCMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "vigil")
	srvPair := ca.Issue(t, "server", "vigil-agent", "127.0.0.1")
	a, err := New(Config{CertFile: srvPair.CertFile, KeyFile: srvPair.KeyFile, ClientCAFile: ca.CertFile})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(a.GRPCOptions()...)
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go gs.Serve(lis)
	defer gs.Stop()

	check := func(cfg ClientConfig) error {
		opts, err := cfg.DialOptions()
		if err != nil {
			return err
		}
		conn, err := grpc.NewClient(lis.Addr().String(), opts...)
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	client := ca.Issue(t, "relay")
	other := testcerts.NewCA(t, t.TempDir(), "other")
	stranger := other.Issue(t, "stranger")
	if err := check(ClientConfig{CAFile: ca.CertFile, CertFile: client.CertFile, KeyFile: client.KeyFile, ServerName: "vigil-agent"}); err != nil {
		t.Errorf("client with the CA's certificate: %v", err)
	}
	if err := check(ClientConfig{CAFile: ca.CertFile, ServerName: "vigil-agent"}); status.Code(err) != codes.Unavailable {
		t.Errorf("client without certificate: %v, want the handshake refused", err)
	}
	if err := check(ClientConfig{CAFile: ca.CertFile, CertFile: stranger.CertFile, KeyFile: stranger.KeyFile, ServerName: "vigil-agent"}); err == nil {
		t.Error("client with another CA's certificate got in")
	}
	if err := check(ClientConfig{CAFile: other.CertFile, CertFile: client.CertFile, KeyFile: client.KeyFile, ServerName: "vigil-agent"}); err == nil {
		t.Error("client accepted a server certificate of a CA it does not trust")
	}
	if err := check(ClientConfig{CAFile: ca.CertFile, CertFile: client.CertFile, KeyFile: client.KeyFile, ServerName: "someone-else"}); err == nil {
		t.Error("client accepted a certificate for another name")
	}

	// Rotation: the Secret gets a new CA and certificates. The server
	// serves the new certificate and accepts clients of the new CA.
	ca2 := testcerts.NewCA(t, dir, "vigil") // same file names
	ca2.Issue(t, "server", "vigil-agent", "127.0.0.1")
	client2 := ca2.Issue(t, "relay")
	time.Sleep(recheck + 100*time.Millisecond)
	if err := check(ClientConfig{CAFile: ca2.CertFile, CertFile: client2.CertFile, KeyFile: client2.KeyFile, ServerName: "vigil-agent"}); err != nil {
		t.Errorf("after rotation: %v", err)
	}
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(ca2.CertFile)
	pool.AppendCertsFromPEM(pem)
	conn, err := tls.Dial("tcp", lis.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "vigil-agent", NextProtos: []string{"h2"}})
	if err == nil {
		conn.Close()
	} else if strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("after rotation the server still serves the old certificate: %v", err)
	}
}
