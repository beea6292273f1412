package sink

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/internal/kerneltest"
)

// header5424 matches the header Vigil writes before the JSON message.
var header5424 = regexp.MustCompile(`^<(\d+)>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z node-a vigil \d+ ([a-z_]+) - (\{.*\})$`)

// readFrames reads octet-counted frames (RFC 6587) until n are read.
func readFrames(t *testing.T, r *bufio.Reader, n int) []string {
	t.Helper()
	var out []string
	for len(out) < n {
		lenStr, err := r.ReadString(' ')
		if err != nil {
			t.Fatalf("after %d frames: %v", len(out), err)
		}
		size, err := strconv.Atoi(strings.TrimSuffix(lenStr, " "))
		if err != nil {
			t.Fatalf("bad frame length %q", lenStr)
		}
		msg := make([]byte, size)
		if _, err := io.ReadFull(r, msg); err != nil {
			t.Fatal(err)
		}
		out = append(out, string(msg))
	}
	return out
}

// checkMessages parses RFC 5424 messages and returns the pids they carry.
func checkMessages(t *testing.T, msgs []string, wantPRI int) []int {
	t.Helper()
	var pids []int
	for _, m := range msgs {
		sub := header5424.FindStringSubmatch(m)
		if sub == nil {
			t.Fatalf("not an RFC 5424 message as expected: %q", m)
		}
		if pri, _ := strconv.Atoi(sub[1]); pri != wantPRI {
			t.Errorf("PRI %d, want %d", pri, wantPRI)
		}
		if sub[2] != "process_exec" {
			t.Errorf("MSGID %q, want process_exec", sub[2])
		}
		pids = append(pids, pidsOf(t, []byte(sub[3]+"\n"))...)
	}
	return pids
}

func TestSyslogTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []string)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		got <- readFrames(t, bufio.NewReader(c), 250)
	}()
	var c tally
	s, err := NewSyslog(SyslogOptions{Network: "tcp", Address: ln.Addr().String(), Facility: 16, Hostname: "node-a"}, c.hooks())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	s.Write(context.Background(), chunk(0, 200), 200)
	s.Write(context.Background(), chunk(200, 250), 50)
	select {
	case msgs := <-got:
		// local0 (16) * 8 + info (6)
		if diff := cmp.Diff(seq(0, 250), checkMessages(t, msgs, 134)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("receiver got nothing")
	}
	if c.delivered.Load() != 250 {
		t.Errorf("delivered %d", c.delivered.Load())
	}
}

func TestSyslogUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var c tally
	s, err := NewSyslog(SyslogOptions{Network: "udp", Address: pc.LocalAddr().String(), Facility: 3, Hostname: "node-a"}, c.hooks())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	s.Write(context.Background(), chunk(0, 20), 20)
	var msgs []string
	buf := make([]byte, 70000)
	for len(msgs) < 20 {
		pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("after %d datagrams: %v", len(msgs), err)
		}
		if strings.HasSuffix(string(buf[:n]), "\n") {
			t.Errorf("datagram ends in a newline")
		}
		msgs = append(msgs, string(buf[:n]))
	}
	// daemon (3) * 8 + info (6); one message per datagram
	if diff := cmp.Diff(seq(0, 20), checkMessages(t, msgs, 30)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// A line too long for a datagram is lost, not truncated.
	big := `{"process_exec":{"x":"` + strings.Repeat("a", 70000) + `"}}` + "\n"
	s.Write(context.Background(), []byte(big), 1)
	if c.lostBy(ReasonSinkError) != 1 {
		t.Errorf("lost %v, want 1 sink_error", c.lost)
	}
}

// TestSyslogReceiverDown: lines written while nobody listens are counted
// lost; once the receiver is back, delivery resumes after the backoff.
func TestSyslogReceiverDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var c tally
	s, _ := NewSyslog(SyslogOptions{Network: "tcp", Address: addr, Hostname: "node-a", Timeout: time.Second}, c.hooks())
	defer s.Close(context.Background())
	s.Write(context.Background(), chunk(0, 10), 10)
	s.Write(context.Background(), chunk(10, 20), 10) // within the backoff: not even tried
	if c.lostBy(ReasonSinkError) != 20 {
		t.Fatalf("lost %v, want 20 sink_error", c.lost)
	}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		kerneltest.Skip(t, "port taken meanwhile: %v", err)
	}
	defer ln.Close()
	got := make(chan []string)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		got <- readFrames(t, bufio.NewReader(conn), 10)
	}()
	time.Sleep(600 * time.Millisecond) // first backoff is 500ms
	s.Write(context.Background(), chunk(20, 30), 10)
	select {
	case msgs := <-got:
		if diff := cmp.Diff(seq(20, 30), checkMessages(t, msgs, 6)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery after the receiver came back")
	}
}

// testCA writes a self-signed certificate for 127.0.0.1 and its key.
func testCA(t *testing.T) (certFile, keyFile string, cert tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vigil test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, err = tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert
}

func TestSyslogTLS(t *testing.T) {
	caFile, keyFile, cert := testCA(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []string)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		got <- readFrames(t, bufio.NewReader(c), 5)
	}()
	cfg, err := TLSFiles{CAFile: caFile, CertFile: caFile, KeyFile: keyFile}.Config()
	if err != nil {
		t.Fatal(err)
	}
	s, _ := NewSyslog(SyslogOptions{Network: "tls", Address: ln.Addr().String(), Hostname: "node-a", TLS: cfg}, Hooks{})
	defer s.Close(context.Background())
	s.Write(context.Background(), chunk(0, 5), 5)
	select {
	case msgs := <-got:
		if diff := cmp.Diff(seq(0, 5), checkMessages(t, msgs, 6)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("receiver got nothing")
	}
}

func TestParseSyslogURL(t *testing.T) {
	for _, tt := range []struct{ in, network, addr, err string }{
		{"udp://10.0.0.1:514", "udp", "10.0.0.1:514", ""},
		{"tls://logs.example.com:6514", "tls", "logs.example.com:6514", ""},
		{"tcp://[fd00::1]:601", "tcp", "[fd00::1]:601", ""},
		{"http://x:514", "", "", `scheme "http"`},
		{"udp://x", "", "", "missing port"},
		{"udp://:514", "", "", "has no host"},
		{"tcp://x:99999", "", "", "not a number from 1 to 65535"},
		{"tcp://x:514/path", "", "", "want only tcp://HOST:PORT"},
	} {
		n, a, err := ParseSyslogURL(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseSyslogURL(%q) error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || n != tt.network || a != tt.addr {
			t.Errorf("ParseSyslogURL(%q) = %q, %q, %v", tt.in, n, a, err)
		}
	}
	if _, err := ParseFacility("local8"); err == nil {
		t.Error("ParseFacility(local8) succeeded")
	}
	if f, err := ParseFacility("LOCAL7"); err != nil || f != 23 {
		t.Errorf("ParseFacility(LOCAL7) = %d, %v", f, err)
	}
}
