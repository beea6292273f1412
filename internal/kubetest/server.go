package kubetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/vigilsec/vigil/internal/kerneltest"
)

// EnvKube set to 1 says the Kubernetes tier runs: a missing kube-apiserver
// or etcd then fails the test instead of skipping it.
const EnvKube = "VIGIL_KUBE"

// EnvAPIServer names the kube-apiserver binary; unset, the one
// scripts/kube-apiserver.sh builds under .cache/kube is used.
const EnvAPIServer = "VIGIL_KUBE_APISERVER"

// startTimeout bounds how long the API server may take to become ready
// (seconds on an idle machine; much more on two loaded cores).
const startTimeout = 3 * time.Minute

// Server is one etcd and one kube-apiserver, both on loopback.
type Server struct {
	// Config is the admin's client configuration (group system:masters).
	Config *rest.Config

	t         testing.TB
	dir       string
	pki       *pki
	apiserver string // binary
	etcdURL   string
	port      int
	etcd, kas *exec.Cmd
	kasLog    string
	waitCh    chan error // kube-apiserver's exit
}

// binaries returns kube-apiserver's and etcd's paths, skipping or failing
// t when one is missing.
func binaries(t testing.TB) (kas, etcd string) {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if os.Getenv(EnvKube) == "1" {
			t.Fatalf("%s=1 but %s", EnvKube, msg)
		}
		kerneltest.Skip(t, "Kubernetes API tier: %s (make test-kube builds and installs what it needs)", msg)
	}
	kas = os.Getenv(EnvAPIServer)
	if kas == "" {
		var err error
		if kas, err = cachedAPIServer(); err != nil {
			missing("%v", err)
			return "", ""
		}
	}
	if _, err := os.Stat(kas); err != nil {
		missing("no kube-apiserver: %v", err)
		return "", ""
	}
	etcd, err := exec.LookPath("etcd")
	if err != nil {
		missing("no etcd (scripts/setup-host.sh --kube installs it): %v", err)
		return "", ""
	}
	return kas, etcd
}

// cachedAPIServer is where scripts/kube-apiserver.sh puts the binary of
// the Kubernetes release matching the k8s.io/client-go version of the
// repository's go.mod.
func cachedAPIServer() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		gomod := filepath.Join(dir, "go.mod")
		if data, err := os.ReadFile(gomod); err == nil {
			m := clientGoRequire.FindSubmatch(data)
			if m == nil {
				return "", fmt.Errorf("%s requires no k8s.io/client-go v0.X.Y", gomod)
			}
			return filepath.Join(dir, ".cache", "kube", "kube-apiserver-v1."+string(m[1])), nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("no go.mod above the working directory to find .cache/kube")
		}
		dir = up
	}
}

var clientGoRequire = regexp.MustCompile(`(?m)^\s*k8s\.io/client-go v0\.(\d+\.\d+)\s*$`)

// freePort returns a loopback TCP port nobody listens on now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start runs etcd and kube-apiserver for t and returns when the API
// server is ready. Both stop when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	kas, etcd := binaries(t)
	dir := t.TempDir()
	p, err := newPKI(dir)
	if err != nil {
		t.Fatalf("certificates: %v", err)
	}
	s := &Server{t: t, dir: dir, pki: p, apiserver: kas}
	t.Cleanup(s.stop)

	clientPort, peerPort := freePort(t), freePort(t)
	s.etcdURL = "http://127.0.0.1:" + strconv.Itoa(clientPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	s.etcd = s.spawn(etcd, "etcd.log",
		"--name=kubetest", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+s.etcdURL, "--advertise-client-urls="+s.etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=kubetest="+peerURL, "--logger=zap", "--log-level=warn")

	s.port = freePort(t)
	s.Config = &rest.Config{
		Host: "https://127.0.0.1:" + strconv.Itoa(s.port),
		TLSClientConfig: rest.TLSClientConfig{
			CAData: p.caPEM, CertData: p.adminCert, KeyData: p.adminKey,
		},
		QPS: 100, Burst: 200,
	}
	s.startAPIServer()
	return s
}

// spawn starts one child process with its output in the file log of the
// server's folder.
func (s *Server) spawn(bin, log string, args ...string) *exec.Cmd {
	s.t.Helper()
	f, err := os.Create(filepath.Join(s.dir, log))
	if err != nil {
		s.t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// Should the test binary die, its servers die with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", bin, err)
	}
	return cmd
}

func (s *Server) startAPIServer() {
	s.t.Helper()
	s.kasLog = "kube-apiserver.log"
	s.kas = s.spawn(s.apiserver, s.kasLog,
		"--etcd-servers="+s.etcdURL,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(s.port),
		"--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none",
		"--tls-cert-file="+s.pki.serverCert, "--tls-private-key-file="+s.pki.serverKey,
		"--client-ca-file="+s.pki.caFile,
		"--service-account-key-file="+s.pki.saPub, "--service-account-signing-key-file="+s.pki.saKey,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-cluster-ip-range=10.96.0.0/24",
		"--authorization-mode=RBAC",
		// No controller manager runs: nothing would create the default
		// service accounts the ServiceAccount admission plugin wants.
		"--disable-admission-plugins=ServiceAccount",
		"--profiling=false", "--v=1")
	s.waitReady()
}

// waitReady polls /readyz until the API server says ready, failing the
// test with the end of its log when it exits or never gets there.
func (s *Server) waitReady() {
	s.t.Helper()
	exited := make(chan error, 1)
	cmd := s.kas
	go func() { exited <- cmd.Wait() }()
	rt, err := rest.TransportFor(s.Config)
	if err != nil {
		s.t.Fatal(err)
	}
	hc := &http.Client{Transport: rt, Timeout: 5 * time.Second}
	deadline := time.Now().Add(startTimeout)
	var last string
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			s.kas = nil
			s.t.Fatalf("kube-apiserver exited: %v\n%s", err, s.logTail(s.kasLog))
		default:
		}
		resp, err := hc.Get(s.Config.Host + "/readyz")
		if err == nil {
			body := make([]byte, 512)
			n, _ := resp.Body.Read(body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				s.waitCh = exited
				return
			}
			last = fmt.Sprintf("%s: %s", resp.Status, body[:n])
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("kube-apiserver not ready after %v (last: %s)\n%s", startTimeout, last, s.logTail(s.kasLog))
}

// logTail returns the last lines of one of the server's logs.
func (s *Server) logTail(name string) string {
	b, _ := os.ReadFile(filepath.Join(s.dir, name))
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// RestartAPIServer kills kube-apiserver (etcd keeps the state) and starts
// it again on the same port, returning when it is ready again. Watches
// open on it break, as they do when a cluster's API server crashes or is
// replaced. (Killed, not stopped: with SIGTERM it drains the open watches
// for more than 20 s, which tells the clients nothing more.)
func (s *Server) RestartAPIServer() {
	s.t.Helper()
	s.stopAPIServer()
	s.startAPIServer()
}

func (s *Server) stopAPIServer() {
	if s.kas == nil {
		return
	}
	terminate(s.kas, s.waitCh, syscall.SIGKILL)
	s.kas, s.waitCh = nil, nil
}

// stop ends both processes at the end of the test. Nothing of their state
// is needed any more, so they are killed rather than shut down gracefully
// (the API server's graceful shutdown drains watches for seconds).
func (s *Server) stop() {
	s.stopAPIServer()
	if s.etcd != nil {
		ch := make(chan error, 1)
		cmd := s.etcd
		go func() { ch <- cmd.Wait() }()
		terminate(cmd, ch, syscall.SIGKILL)
		s.etcd = nil
	}
}

// terminate ends one child by its PID with sig, then SIGKILL when it has
// not exited after a while.
func terminate(cmd *exec.Cmd, exited <-chan error, sig syscall.Signal) {
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Clientset returns a typed client of the admin.
func (s *Server) Clientset(t testing.TB) *kubernetes.Clientset {
	t.Helper()
	c, err := kubernetes.NewForConfig(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// As returns the admin's configuration impersonating user (with groups),
// for what a service account or another user may do.
func (s *Server) As(user string, groups ...string) *rest.Config {
	c := rest.CopyConfig(s.Config)
	c.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	return c
}

// ServiceAccount returns the configuration of the service account
// namespace/name as the API server authenticates it (impersonated).
func (s *Server) ServiceAccount(namespace, name string) *rest.Config {
	return s.As("system:serviceaccount:"+namespace+":"+name,
		"system:serviceaccounts", "system:serviceaccounts:"+namespace, "system:authenticated")
}

// Context returns a context that ends with t.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}
