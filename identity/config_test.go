package identity

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"
)

func TestFlags(t *testing.T) {
	var c Config
	fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	c.AddFlags(fs)
	if diff := cmp.Diff(DefaultConfig(), c); diff != "" {
		t.Errorf("flag defaults differ from DefaultConfig (-want +got):\n%s", diff)
	}
	if err := fs.Parse([]string{"--cri-endpoint", "/run/a.sock", "--cri-endpoint", "unix:///run/b.sock", "--workloads", "/etc/w.yaml",
		"--kubernetes", "off", "--cri-poll-interval", "5s", "--identity-hold", "1s", "--identity-hold-max", "10"}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"/run/a.sock", "unix:///run/b.sock"}, c.CRIEndpoints); diff != "" {
		t.Error(diff)
	}
	if c.Kubernetes != KubernetesOff || c.CRIPollInterval != 5*time.Second || c.HoldTimeout != time.Second || c.HoldMax != 10 || c.WorkloadFiles[0] != "/etc/w.yaml" {
		t.Errorf("parsed config %+v", c)
	}
	if fs.Lookup("node-name") != nil {
		t.Error("--node-name is the agent's flag")
	}
}

func TestValidate(t *testing.T) {
	if err := func() error { c := DefaultConfig(); return c.Validate() }(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"relative endpoint", func(c *Config) { c.CRIEndpoints = []string{"containerd.sock"} }, `--cri-endpoint: "containerd.sock": want a socket path (/run/containerd/containerd.sock) or unix:///path`},
		{"none with others", func(c *Config) { c.CRIEndpoints = []string{"none", "/a"} }, `--cri-endpoint: "none" cannot be combined with other endpoints`},
		{"kubernetes mode", func(c *Config) { c.Kubernetes = "yes" }, `--kubernetes: "yes": want auto, on or off`},
		{"missing kubeconfig", func(c *Config) { c.Kubeconfig = "/nonexistent/kubeconfig" }, `--kubeconfig: stat /nonexistent/kubeconfig: no such file or directory`},
		{"missing workloads file", func(c *Config) { c.WorkloadFiles = []string{"/nonexistent/w.yaml"} }, `--workloads: stat /nonexistent/w.yaml: no such file or directory`},
		{"poll too short", func(c *Config) { c.CRIPollInterval = time.Millisecond }, `--cri-poll-interval: 1ms is too short (at least 100ms)`},
		{"rescan too short", func(c *Config) { c.CgroupRescanInterval = 0 }, `--cgroup-rescan-interval: 0s is too short (at least 1s)`},
		{"workers", func(c *Config) { c.LookupWorkers = 0 }, `--identity-lookup-workers: 0 is out of range (1 to 64)`},
		{"rate", func(c *Config) { c.LookupRate = 0 }, `--identity-lookup-rate: 0 must be positive`},
		{"hold", func(c *Config) { c.HoldTimeout = time.Minute }, `--identity-hold: 1m0s is out of range (0 to 10s)`},
		{"hold max", func(c *Config) { c.HoldMax = -1 }, `--identity-hold-max: -1 must not be negative`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mod(&c)
			err := c.Validate()
			if err == nil || err.Error() != tt.want {
				t.Errorf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestUnreachableRuntime: New with a socket nobody serves starts anyway;
// the failure is logged with a hint and counted, and the hot path answers.
func TestUnreachableRuntime(t *testing.T) {
	cfg := DefaultConfig()
	cfg.CRIEndpoints = []string{t.TempDir() + "/containerd.sock"}
	cfg.Kubernetes = KubernetesOff
	logs := &logBuffer{}
	l := logrus.New()
	l.SetOutput(logs)
	r, err := New(cfg, t.TempDir(), l, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	<-r.Synced()
	waitFor(t, func() bool { return strings.Contains(logs.String(), "metadata source failed") })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	out := logs.String()
	if !strings.Contains(out, "is the runtime running, and the socket mounted?") || !strings.Contains(out, "source=cri") {
		t.Errorf("log lacks the hint or the source:\n%s", out)
	}
	if v := value(r.metrics.sourceUp.WithLabelValues(SourceCRI)); v != 0 {
		t.Errorf("source_up = %v", v)
	}
	if p, _ := r.PodForCgroup(1); p != nil {
		t.Errorf("pod %+v without any source", p)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	c := DefaultConfig()
	c.Kubernetes = "maybe"
	if _, err := New(c, t.TempDir(), nil, nil); err == nil || !strings.Contains(err.Error(), "--kubernetes") {
		t.Errorf("New = %v", err)
	}
	c = DefaultConfig()
	c.Kubernetes = KubernetesOn
	c.CRIEndpoints = []string{CRINone}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if _, err := New(c, t.TempDir(), nil, nil); err == nil || !strings.Contains(err.Error(), "--kubernetes") {
		t.Errorf("--kubernetes=on outside a cluster: %v", err)
	}
}
