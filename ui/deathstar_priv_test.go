package ui_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/vigilsec/vigil/agent"
	"github.com/vigilsec/vigil/examples"
	"github.com/vigilsec/vigil/exporter"
	"github.com/vigilsec/vigil/internal/browsertest"
	"github.com/vigilsec/vigil/internal/kerneltest"
	"github.com/vigilsec/vigil/networkpolicy/datapath/testpods"
)

func TestMain(m *testing.M) {
	testpods.RunHelperIfRequested()
	os.Exit(m.Run())
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// The Death Star example enforced by a real agent, seen in its web UI: the
// three ships are network namespaces in cgroups, examples/deathstar's
// policy lets only the Empire land; the TIE fighter lands, the X-wing is
// dropped, and the map in Chromium shows tiefighter -> deathstar forwarded
// and xwing -> deathstar dropped by rule1. The hubble CLI reads the same
// drop from the agent's Observer API.
func TestPrivDeathStarInTheUI(t *testing.T) {
	root := testpods.Require(t)
	c := testpods.New(t, root)
	star := netip.MustParseAddr("10.211.0.10")
	ds := c.Add("deathstar", []netip.Addr{star}, true)
	tie := c.Add("tiefighter", []netip.Addr{netip.MustParseAddr("10.211.0.11")}, true)
	xw := c.Add("xwing", []netip.Addr{netip.MustParseAddr("10.211.0.12")}, true)
	cgBase := "/" + fmt.Sprintf("vigil-testpods-%d", os.Getpid())
	var docs []string
	for i, w := range []struct{ name, labels, ip string }{
		{"deathstar", "org: empire, class: deathstar", "10.211.0.10"},
		{"tiefighter", "org: empire, class: tiefighter", "10.211.0.11"},
		{"xwing", "org: alliance, class: xwing", "10.211.0.12"},
	} {
		docs = append(docs, fmt.Sprintf("apiVersion: vigil.dev/v1alpha1\nkind: Workload\nmetadata: {name: %s, namespace: default, labels: {%s}}\nspec: {cgroupPath: %s/pod%d, ips: [%s]}\n",
			w.name, w.labels, cgBase, i+1, w.ip))
	}
	wl := filepath.Join(t.TempDir(), "workloads.yaml")
	if err := os.WriteFile(wl, []byte(strings.Join(docs, "---\n")), 0o644); err != nil {
		t.Fatal(err)
	}

	cfg := agent.DefaultConfig()
	cfg.NodeName = "test-node"
	cfg.MetricsAddr = ""
	cfg.SocketPath = filepath.Join(t.TempDir(), "vigil.sock")
	cfg.NoDefaultPolicies = true
	cfg.Rules.NoDefaultRules = true
	cfg.Export = exporter.DefaultConfig()
	cfg.Export.Stdout = false
	cfg.Export.File = filepath.Join(t.TempDir(), "events.json")
	// The example's policy as embedded, so that it is there in the VM tier too.
	pol, err := examples.DeathStar.ReadFile("deathstar/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	polFile := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(polFile, pol, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.NetworkPolicies = []string{polFile}
	cfg.Identity.WorkloadFiles = []string{wl}
	cfg.Identity.CRIEndpoints = []string{"none"}
	cfg.Identity.Kubernetes = "off"
	cfg.UI.Addr, cfg.UI.HubbleAddr = freeAddr(t), freeAddr(t)
	log := logrus.New()
	log.SetOutput(io.Discard)
	a, err := agent.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for !a.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("agent not ready")
		}
		time.Sleep(20 * time.Millisecond)
	}

	if r := ds.Listen("tcp", 80); r != "" && r != "ok" {
		t.Fatalf("listen: %s", r)
	}
	target := netip.AddrPortFrom(star, 80)
	for {
		if r := tie.Probe("tcp", target, time.Second); r == testpods.Allowed {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("tiefighter: %s", r)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := 0; i < 2; i++ {
		if r := xw.Probe("tcp", target, 500*time.Millisecond); r != testpods.Timeout {
			t.Errorf("xwing: %s, want timeout (dropped at the deathstar)", r)
		}
	}

	// The agent's Observer API, read with the module's client.
	conn, err := grpc.NewClient(cfg.UI.HubbleAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	st, err := observerpb.NewObserverClient(conn).GetFlows(ctx, &observerpb.GetFlowsRequest{
		Whitelist: []*flowpb.FlowFilter{{Verdict: []flowpb.Verdict{flowpb.Verdict_DROPPED}, SourcePod: []string{"default/xwing"}}}})
	if err != nil {
		t.Fatal(err)
	}
	var drops int
	for {
		r, err := st.Recv()
		if err != nil {
			break
		}
		f := r.GetFlow()
		if f.GetDestination().GetPodName() != "deathstar" || len(f.GetIngressDeniedBy()) != 1 || f.GetIngressDeniedBy()[0].GetName() != "rule1" {
			t.Errorf("xwing's drop: %v", f)
		}
		drops++
	}
	if drops == 0 {
		t.Error("the Observer API has no drop of the xwing")
	}

	t.Run("browser", func(t *testing.T) {
		bctx := browsertest.New(t, 1400, 900)
		if err := chromedp.Do(bctx, chromedp.Navigate("http://"+cfg.UI.Addr+"/")); err != nil {
			t.Fatal(err)
		}
		browsertest.WaitFor(t, bctx, "tiefighter -> deathstar forwarded and xwing -> deathstar dropped by rule1",
			`!!(window.vigil && window.vigil.map.drawn().edges.some(e => e.source === 'default/tiefighter' && e.target === 'default/deathstar' && e.verdict === 'forwarded')
			 && window.vigil.map.drawn().edges.some(e => e.source === 'default/xwing' && e.target === 'default/deathstar' && e.verdict === 'dropped' && e.label.includes('dropped by default/rule1')))`,
			`JSON.stringify(window.vigil && window.vigil.map.drawn())`, 30*time.Second)
		browsertest.WaitFor(t, bctx, "the layout", `window.vigil.map.layoutsDone >= 1`, "", 10*time.Second)
		browsertest.Screenshot(t, bctx, "deathstar-agent")
	})

	t.Run("hubble CLI", func(t *testing.T) {
		out, err := exec.Command(hubbleCLI(t), "observe", "--server", cfg.UI.HubbleAddr, "--verdict", "DROPPED").CombinedOutput()
		if err != nil {
			t.Fatalf("hubble observe: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "default/xwing") || !strings.Contains(string(out), "default/deathstar:80") ||
			!strings.Contains(string(out), "Policy denied DROPPED") {
			t.Errorf("hubble observe --verdict DROPPED:\n%s", out)
		}
	})
}

func hubbleCLI(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		kerneltest.Skip(t, "building the hubble CLI needs the Go toolchain (not in the VM tier)")
	}
	cmd := exec.Command("../scripts/hubble-cli.sh")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/hubble-cli.sh: %v", err)
	}
	return strings.TrimSpace(string(out))
}
