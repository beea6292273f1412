package keep_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigilsec/vigil/agent"
	"github.com/vigilsec/vigil/agent/agenttest"
	"github.com/vigilsec/vigil/networkpolicy"
	"github.com/vigilsec/vigil/networkpolicy/datapath"
	"github.com/vigilsec/vigil/networkpolicy/datapath/testpods"
)

// netpolClient's egress is limited to the server's port 80 (and 82, where
// a connection is held); %s adds ports.
const netpolClient = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-egress, namespace: default}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {app: server}}}]
    ports: [{protocol: TCP, port: 80}, {protocol: TCP, port: 82}%s]
`

// An agent with --keep-enforcement-on-exit enforces network policies and
// is killed with SIGKILL: the client's connects the policy denies still
// fail with EPERM, the allowed ones pass, a connection opened before
// carries data. A restarted agent with a changed policy adopts the
// programs while the client connects over and over to a denied port: none
// passes at any moment; allowed ones pass before and after, the change is
// in force after it, the held connection still works, and the records of the
// connects denied while no agent ran are counted (no_agent). The
// enforcement outlasts the second agent's stop too, until --cleanup-pins;
// an agent without network policies removes kept programs.
func TestPrivKeepNetworkPolicyAfterKill(t *testing.T) {
	r := newNetpolRig(t)
	first := agenttest.StartAgentProcess(t, agenttest.ProcessOptions{Keep: true, PinDir: r.dir, NetworkPolicies: []string{r.pol}, Workloads: []string{r.wl}})
	r.until(t, "with the agent", 81, testpods.EPERM)
	r.expect(t, "with the agent", map[uint16]string{80: testpods.Allowed, 83: testpods.EPERM})
	if got := r.client.Hold("conn", netip.AddrPortFrom(r.serverIP, 82)); got != testpods.Allowed {
		t.Fatalf("hold a connection to port 82: %s", got)
	}
	netpolPins := pins(t, filepath.Join(r.dir, "netpol"))
	if netpolPins != 7 {
		t.Errorf("%d pins under %s/netpol, want 7 (six links and np_flows)", netpolPins, r.dir)
	}

	first.Kill()
	r.expect(t, "after kill -9 of the agent", map[uint16]string{80: testpods.Allowed, 81: testpods.EPERM, 83: testpods.EPERM})
	if got := r.client.Held("conn"); got != testpods.Allowed {
		t.Errorf("held connection after kill -9 of the agent: %s", got)
	}

	// connect() of a UDP socket, over and over: decided by the connect
	// hook alone, with no timeout that a slow moment could hit. One watch
	// only: it takes a CPU, which the emulated VMs have one of (the
	// datapath's test watches an allowed port as well).
	if got := r.client.Watch("deny", "connect", netip.AddrPortFrom(r.serverIP, 81), testpods.EPERM); got != "ok" {
		t.Fatal(got)
	}
	agenttest.WritePolicy(t, r.polDir, "np.yaml", fmt.Sprintf(netpolClient, ", {protocol: TCP, port: 83}"))
	h := r.agent(t, true, true)
	r.until(t, "after the restart with port 83 allowed", 83, testpods.Allowed)
	probes, different, firstOther, err := r.client.Unwatch("deny")
	agenttest.FatalIf(t, err)
	if probes == 0 || different != 0 {
		t.Errorf("%d of %d connects to the denied port got another result across the hand-over (first: %s)", different, probes, firstOther)
	}
	r.expect(t, "after the restart", map[uint16]string{80: testpods.Allowed, 81: testpods.EPERM})
	if got := r.client.Held("conn"); got != testpods.Allowed {
		t.Errorf("held connection after the hand-over: %s", got)
	}
	if n := gauge(t, h, "vigil_netpol_programs_adopted"); n != 6 {
		t.Errorf("vigil_netpol_programs_adopted = %v, want 6", n)
	}
	if n := gauge(t, h, "vigil_netpol_inherited_programs_enforcing"); n != 0 {
		t.Errorf("vigil_netpol_inherited_programs_enforcing = %v after the take-over, want 0", n)
	}
	if n := lost(t, h, "no_agent"); n < 1 {
		t.Errorf(`vigil_events_lost_total{reason="no_agent"} = %v, want at least 1 (the connects denied while no agent ran)`, n)
	}
	if n := pins(t, filepath.Join(r.dir, "netpol")); n != netpolPins {
		t.Errorf("%d network-policy pins after the hand-over, want %d", n, netpolPins)
	}

	h.Stop()
	r.expect(t, "after the restarted agent stopped", map[uint16]string{81: testpods.EPERM, 83: testpods.Allowed})

	n, err := agent.CleanupPins(r.dir)
	agenttest.FatalIf(t, err)
	if n < netpolPins {
		t.Errorf("--cleanup-pins removed %d pins, want at least the %d of the network policies", n, netpolPins)
	}
	r.expect(t, "after the clean-up", map[uint16]string{81: testpods.Allowed})

	// An agent without the flag and without network policies removes
	// kept programs once it takes over: their policies are not its own.
	kept, err := datapath.New(datapath.Config{Workloads: &testpods.Workloads{}, LinkPinDir: filepath.Join(r.dir, "netpol"), KeepOnClose: true}, nil)
	agenttest.FatalIf(t, err)
	agenttest.FatalIf(t, kept.Load())
	_, err = kept.Apply(context.Background(), &networkpolicy.Resources{})
	agenttest.FatalIf(t, err)
	agenttest.FatalIf(t, kept.Close())
	if n := pins(t, filepath.Join(r.dir, "netpol")); n != netpolPins {
		t.Fatalf("%d pins kept by a datapath, want %d", n, netpolPins)
	}
	none := r.agent(t, false, false)
	if _, err := os.Stat(filepath.Join(r.dir, "netpol")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s/netpol with an agent without network policies: %v, want it removed", r.dir, err)
	}
	none.Stop()
}

// netpolRig is a server and a client whose egress the agent's network
// policy limits; pol is the policy file (in polDir), wl the workloads.
type netpolRig struct {
	dir, polDir, pol, wl string
	server, client       *testpods.Endpoint
	serverIP             netip.Addr
}

func newNetpolRig(t *testing.T) *netpolRig {
	dir := pinDir(t)
	root := testpods.Require(t)
	cl := testpods.New(t, root)
	serverIP := netip.MustParseAddr("10.212.0.10")
	server := cl.Add("server", []netip.Addr{serverIP}, true)
	client := cl.Add("client", []netip.Addr{netip.MustParseAddr("10.212.0.11")}, true)
	for _, r := range []string{server.Listen("tcp", 80), server.Listen("tcp", 81), server.ListenEcho(82), server.Listen("tcp", 83)} {
		if r != "ok" {
			t.Fatal(r)
		}
	}
	cgBase := fmt.Sprintf("/vigil-testpods-%d", os.Getpid())
	wl := agenttest.WritePolicy(t, t.TempDir(), "workloads.yaml", fmt.Sprintf(`apiVersion: vigil.dev/v1alpha1
kind: Workload
metadata: {name: server, namespace: default, labels: {app: server}}
spec: {cgroupPath: %[1]s/pod1, ips: [10.212.0.10]}
---
apiVersion: vigil.dev/v1alpha1
kind: Workload
metadata: {name: client, namespace: default, labels: {app: client}}
spec: {cgroupPath: %[1]s/pod2, ips: [10.212.0.11]}
`, cgBase))
	polDir := t.TempDir()
	pol := agenttest.WritePolicy(t, polDir, "np.yaml", fmt.Sprintf(netpolClient, ""))
	return &netpolRig{dir: dir, polDir: polDir, pol: pol, wl: wl, server: server, client: client, serverIP: serverIP}
}

func (r *netpolRig) to(port uint16) string {
	// The probes expect a verdict at connect() or an echo, never a
	// timeout: a long one costs nothing.
	return r.client.Probe("tcp", netip.AddrPortFrom(r.serverIP, port), 10*time.Second)
}

// until waits for the agent's apply: the policy is applied once the pods
// are known.
func (r *netpolRig) until(t *testing.T, what string, port uint16, want string) {
	t.Helper()
	for deadline := time.Now().Add(agenttest.Timeout()); r.to(port) != want; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: the client's connect to port %d: %s, want %s", what, port, r.to(port), want)
		}
	}
}

func (r *netpolRig) expect(t *testing.T, when string, want map[uint16]string) {
	t.Helper()
	for _, port := range []uint16{80, 81, 83} {
		if w, ok := want[port]; ok {
			if got := r.to(port); got != w {
				t.Errorf("%s: the client's connect to port %d: %s, want %s", when, port, got, w)
			}
		}
	}
}

// agent starts an agent in the test's process on the rig's pin directory.
func (r *netpolRig) agent(t *testing.T, keep, netpol bool) *agenttest.Harness {
	return agenttest.StartAgent(t, func(c *agent.Config) {
		if netpol {
			c.NetworkPolicies = []string{r.pol}
		}
		c.Identity.WorkloadFiles = []string{r.wl}
		c.Identity.CRIEndpoints = []string{"none"}
		c.Identity.Kubernetes = "off"
		c.KeepEnforcementOnExit = keep
		c.BPFPinDir = r.dir
	})
}

func gauge(t *testing.T, h *agenttest.Harness, name string) float64 {
	t.Helper()
	mfs, err := h.Metrics().Gather()
	agenttest.FatalIf(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
