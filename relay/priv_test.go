package relay

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/vigilsec/vigil/apiauth"
	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/hubble"
	"github.com/vigilsec/vigil/internal/browsertest"
	"github.com/vigilsec/vigil/internal/kerneltest"
	"github.com/vigilsec/vigil/internal/testcerts"
)

// The helper agent: serves an Observer API with mTLS in its network
// namespace, over the Death Star flows its node would see, and one new flow
// every 50ms, until its stdin closes.
const (
	envAgent  = "VIGIL_RELAY_TEST_AGENT"
	envListen = "VIGIL_RELAY_TEST_LISTEN"
	envCerts  = "VIGIL_RELAY_TEST_CERTS" // cert,key,ca
)

func TestMain(m *testing.M) {
	if node := os.Getenv(envAgent); node != "" {
		os.Exit(helperAgent(node))
	}
	os.Exit(m.Run())
}

func pod(name string, labels ...string) event.Endpoint {
	return event.Endpoint{Namespace: "default", PodName: name, Labels: labels, Workloads: []event.Workload{{Name: name, Kind: "Deployment"}}}
}

// nodeFlows are what each node observes of the Death Star demo: the
// ships' sockets on node-2 and node-3, the station's on node-1.
func nodeFlows(node string, at time.Time) []*event.Event {
	ds, tie, xw := pod("deathstar", "org=empire", "class=deathstar"), pod("tiefighter", "org=empire"), pod("xwing", "org=alliance")
	flow := func(src event.Endpoint, srcIP string, dir event.Direction, v event.Verdict, proc string) *event.Event {
		f := &event.Flow{Verdict: v, Source: netip.MustParseAddr(srcIP), Destination: netip.MustParseAddr("10.0.1.10"),
			Protocol: event.ProtoTCP, SourcePort: 41000, DestinationPort: 80, SourceEndpoint: src, DestEndpoint: ds, Direction: dir}
		if v == event.VerdictDropped {
			f.DropReasonDesc, f.IngressDeniedBy = "POLICY_DENIED", []string{"CiliumNetworkPolicy default/rule1"}
		}
		return &event.Event{Type: event.TypeFlow, Time: at, Flow: f,
			Process: &event.Process{ExecID: node + proc, PID: 7, Binary: proc, StartTime: at.Add(-time.Hour)}}
	}
	switch node {
	case "node-1":
		return []*event.Event{flow(tie, "10.0.2.11", event.DirectionIngress, event.VerdictForwarded, "/usr/local/bin/deathstar"),
			flow(xw, "10.0.3.12", event.DirectionIngress, event.VerdictDropped, "/usr/local/bin/deathstar")}
	case "node-2":
		return []*event.Event{flow(tie, "10.0.2.11", event.DirectionEgress, event.VerdictForwarded, "/usr/bin/curl")}
	default:
		return []*event.Event{flow(xw, "10.0.3.12", event.DirectionEgress, event.VerdictForwarded, "/usr/bin/curl")}
	}
}

func helperAgent(node string) int {
	certs := strings.Split(os.Getenv(envCerts), ",")
	auth, err := apiauth.New(apiauth.Config{CertFile: certs[0], KeyFile: certs[1], ClientCAFile: certs[2]})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	store, _ := hubble.NewStore(4096)
	conv := hubble.NewConverter(node, nil)
	for _, ev := range nodeFlows(node, time.Now().Add(-time.Minute)) {
		store.Put(conv.Convert(ev))
	}
	lis, err := net.Listen("tcp", os.Getenv(envListen))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { io.Copy(io.Discard, os.Stdin); cancel() }()
	go func() {
		for ctx.Err() == nil {
			for _, ev := range nodeFlows(node, time.Now()) {
				store.Put(conv.Convert(ev))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	fmt.Println("ready")
	if err := hubble.Serve(ctx, lis, hubble.NewServer(store, hubble.ServerOptions{NodeName: node}), auth.GRPCOptions()...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Three agents in network namespaces of their own, reached over veth
// links with mTLS, feed one relay: the relay's Observer API and its web UI
// show the flows of all three nodes, each with its node name; the hubble
// CLI filters them by node; a UI client that reads nothing slows neither
// the relay nor the agents.
func TestPrivRelayThreeNamespaces(t *testing.T) {
	kerneltest.Require(t)
	// iproute2 with network namespaces, which the busybox test VMs lack.
	if err := exec.Command("ip", "netns", "list").Run(); err != nil {
		kerneltest.Skip(t, "needs iproute2's ip netns: %v", err)
	}
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "vigil")
	agentCert := ca.Issue(t, "agent", "vigil-agent")
	relayCert := ca.Issue(t, "relay")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var peers []string
	tag := strconv.Itoa(os.Getpid() % 100000)
	for i := 1; i <= 3; i++ {
		ns, host := fmt.Sprintf("vgr%s-%d", tag, i), fmt.Sprintf("vgr%sh%d", tag, i)
		hostIP, nsIP := fmt.Sprintf("198.18.30.%d", 4*i+1), fmt.Sprintf("198.18.30.%d", 4*i+2)
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		run(t, "ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns)
		t.Cleanup(func() { exec.Command("ip", "link", "del", host).Run() })
		run(t, "ip", "addr", "add", hostIP+"/30", "dev", host)
		run(t, "ip", "link", "set", host, "up")
		run(t, "ip", "-n", ns, "addr", "add", nsIP+"/30", "dev", "eth0")
		run(t, "ip", "-n", ns, "link", "set", "eth0", "up")
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")

		node := fmt.Sprintf("node-%d", i)
		addr := nsIP + ":4244"
		cmd := exec.Command("ip", "netns", "exec", ns, self, "-test.run=^$")
		cmd.Env = append(os.Environ(), envAgent+"="+node, envListen+"="+addr,
			envCerts+"="+agentCert.CertFile+","+agentCert.KeyFile+","+ca.CertFile)
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stdin.Close(); cmd.Wait() })
		if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "ready\n" {
			t.Fatalf("agent %s: %q", node, line)
		}
		peers = append(peers, node+"="+addr)
	}

	cfg := DefaultConfig()
	cfg.Addr, cfg.HubbleAddr = freePort(t), freePort(t)
	cfg.Peers = peers
	cfg.PeerTLS = apiauth.ClientConfig{CAFile: ca.CertFile, CertFile: relayCert.CertFile, KeyFile: relayCert.KeyFile, ServerName: "vigil-agent"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, quiet()) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("relay: %v", err)
		}
	})

	conn, err := grpc.NewClient(cfg.HubbleAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := observerpb.NewObserverClient(conn)
	waitFor(t, "three connected peers", func() bool {
		r, err := c.GetNodes(ctx, &observerpb.GetNodesRequest{})
		return err == nil && nodeStates(t, c) == "node-1=CONNECTED node-2=CONNECTED node-3=CONNECTED" && len(r.GetNodes()) == 3
	})

	// A UI client that asks for the live stream and reads nothing.
	slow, err := net.Dial("tcp", cfg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "GET /api/stream?window=all HTTP/1.1\r\nHost: relay\r\n\r\n")

	// Follow the relay: every node's new flows arrive, named by node.
	fctx, fcancel := context.WithTimeout(ctx, 20*time.Second)
	defer fcancel()
	st, err := c.GetFlows(fctx, &observerpb.GetFlowsRequest{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for len(seen) < 3 || seen["node-1"] < 20 || seen["node-2"] < 20 || seen["node-3"] < 20 {
		r, err := st.Recv()
		if err != nil {
			t.Fatalf("following the relay: %v (seen %v)", err, seen)
		}
		if f := r.GetFlow(); f != nil {
			if f.GetNodeName() != r.GetNodeName() {
				t.Fatalf("flow of %s in a response of %s", f.GetNodeName(), r.GetNodeName())
			}
			seen[f.GetNodeName()]++
		}
	}
	fcancel()

	// The hubble CLI against the relay, filtering by node.
	t.Run("hubble CLI", func(t *testing.T) {
		bin := hubbleCLIPath(t)
		out, err := exec.Command(bin, "observe", "--server", cfg.HubbleAddr, "--node-name", "node-1", "--last", "20", "-o", "json").Output()
		if err != nil {
			t.Fatalf("hubble observe: %v", err)
		}
		n := 0
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			var r struct {
				Flow struct {
					NodeName string `json:"node_name"`
					Verdict  string `json:"verdict"`
				} `json:"flow"`
			}
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("hubble -o json: %v: %s", err, line)
			}
			if r.Flow.NodeName != "node-1" {
				t.Errorf("hubble observe --node-name node-1 printed a flow of %q", r.Flow.NodeName)
			}
			n++
		}
		if n != 20 {
			t.Errorf("hubble observe --last 20 printed %d flows", n)
		}
	})

	// The cluster in the browser.
	t.Run("browser", func(t *testing.T) {
		bctx := browsertest.New(t, 1400, 900)
		if err := chromedp.Do(bctx, chromedp.Navigate("http://"+cfg.Addr+"/?window=all")); err != nil {
			t.Fatal(err)
		}
		browsertest.WaitFor(t, bctx, "the cluster map",
			`!!(window.vigil && window.vigil.snapshots >= 1 && window.vigil.map.layoutsDone >= 1 && window.vigil.map.drawn().edges.length === 2)`,
			`document.body.innerText`, 20*time.Second)
		header, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`document.querySelector('header .mode').innerText`))
		if header != "cluster · 3 of 3 nodes" {
			t.Errorf("header says %q, want the three connected nodes", header)
		}
		edges, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`JSON.stringify(window.vigil.map.drawn().edges.map(e => e.id + ' ' + e.verdict).sort())`))
		if edges != `["default/tiefighter>default/deathstar:TCP/80 forwarded","default/xwing>default/deathstar:TCP/80 dropped"]` {
			t.Errorf("cluster map edges %s", edges)
		}
		browsertest.Screenshot(t, bctx, "relay-three-nodes")
	})

	// The relay kept following while the slow client read nothing.
	before := relaySeen(t, c)
	time.Sleep(time.Second)
	if after := relaySeen(t, c); after < before+30 {
		t.Errorf("the relay stored %d flows in a second with a stalled UI client, want the peers' 60", after-before)
	}
	resp, err := http.Get("http://" + cfg.Addr + "/api/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

func relaySeen(t *testing.T, c observerpb.ObserverClient) uint64 {
	t.Helper()
	st, err := c.ServerStatus(context.Background(), &observerpb.ServerStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return st.GetSeenFlows()
}

func hubbleCLIPath(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		kerneltest.Skip(t, "building the hubble CLI needs the Go toolchain")
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	root := strings.TrimSuffix(strings.TrimSpace(string(out)), "/go.mod")
	cmd := exec.Command(root + "/scripts/hubble-cli.sh")
	cmd.Stderr = os.Stderr
	path, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/hubble-cli.sh: %v", err)
	}
	return strings.TrimSpace(string(path))
}
