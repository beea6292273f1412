package relay

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	observerpb "github.com/cilium/cilium/api/v1/observer"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/vigilsec/vigil/apiauth"
	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/hubble"
	"github.com/vigilsec/vigil/internal/testcerts"
)

func quiet() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// agent is an Observer API over a store, as an agent serves it.
type agent struct {
	name   string
	addr   string
	store  *hubble.Store
	conv   *hubble.Converter
	cancel context.CancelFunc
	done   chan error
}

func startAgent(t *testing.T, name string, auth *apiauth.Authenticator) *agent {
	t.Helper()
	store, err := hubble.NewStore(1 << 16)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &agent{name: name, addr: lis.Addr().String(), store: store, conv: hubble.NewConverter(name, nil), cancel: cancel, done: make(chan error, 1)}
	var opts []grpc.ServerOption
	if auth != nil {
		opts = auth.GRPCOptions()
	}
	go func() {
		a.done <- hubble.Serve(ctx, lis, hubble.NewServer(store, hubble.ServerOptions{NodeName: name}), opts...)
	}()
	t.Cleanup(a.stop)
	return a
}

func (a *agent) stop() {
	if a.cancel != nil {
		a.cancel()
		<-a.done
		a.cancel = nil
	}
}

func (a *agent) flow(pod string, i int) {
	ep := event.Endpoint{Namespace: "default", PodName: pod, Labels: []string{"app=" + pod}}
	a.store.Put(a.conv.Convert(&event.Event{Type: event.TypeFlow, Time: time.Now(), Flow: &event.Flow{
		Verdict: event.VerdictForwarded, Source: netip.MustParseAddr("10.0.0.1"), Destination: netip.MustParseAddr("10.0.0.2"),
		Protocol: event.ProtoTCP, SourcePort: uint16(30000 + i%30000), DestinationPort: 80, SourceEndpoint: ep,
		DestEndpoint: event.Endpoint{Namespace: "default", PodName: "db"}, Direction: event.DirectionEgress}}))
}

// startRelay runs a relay over peers and serves its Observer API; it
// returns a client of that API and the relay.
func startRelay(t *testing.T, peers []Peer, dial []grpc.DialOption) (observerpb.ObserverClient, *Relay, *hubble.Store) {
	t.Helper()
	store, err := hubble.NewStore(1 << 16)
	if err != nil {
		t.Fatal(err)
	}
	r := New(store, dial, quiet())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.Run(ctx, Static(peers)) }()
	go func() {
		defer wg.Done()
		hubble.Serve(ctx, lis, hubble.NewServer(store, hubble.ServerOptions{NodeName: "relay", Nodes: r.Nodes}))
	}()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); cancel(); wg.Wait() })
	return observerpb.NewObserverClient(conn), r, store
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func nodeStates(t *testing.T, c observerpb.ObserverClient) string {
	t.Helper()
	r, err := c.GetNodes(context.Background(), &observerpb.GetNodesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, n := range r.GetNodes() {
		s = append(s, n.GetName()+"="+strings.TrimPrefix(n.GetState().String(), "NODE_"))
	}
	return strings.Join(s, " ")
}

// Three agents with mTLS feed one relay: their history and their new flows
// reach the relay's clients with each flow's node; an agent that stops is
// reported unavailable, and followed again when it is back.
func TestRelayAggregatesAgents(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "vigil")
	srv := ca.Issue(t, "agent", "vigil-agent")
	auth, err := apiauth.New(apiauth.Config{CertFile: srv.CertFile, KeyFile: srv.KeyFile, ClientCAFile: ca.CertFile})
	if err != nil {
		t.Fatal(err)
	}
	client := ca.Issue(t, "relay")
	dial, err := apiauth.ClientConfig{CAFile: ca.CertFile, CertFile: client.CertFile, KeyFile: client.KeyFile, ServerName: "vigil-agent"}.DialOptions()
	if err != nil {
		t.Fatal(err)
	}
	var agents []*agent
	var peers []Peer
	for _, n := range []string{"node-1", "node-2", "node-3"} {
		a := startAgent(t, n, auth)
		a.flow("web-"+n, 0) // history, from before the relay
		agents = append(agents, a)
		peers = append(peers, Peer{Name: n, Address: a.addr})
	}
	c, _, store := startRelay(t, peers, dial)
	waitFor(t, "all three peers connected and their history relayed", func() bool {
		return nodeStates(t, c) == "node-1=CONNECTED node-2=CONNECTED node-3=CONNECTED" && store.Stats().Seen == 3
	})
	for i, a := range agents {
		a.flow("api-"+a.name, i+1)
	}
	waitFor(t, "the new flows", func() bool { return store.Stats().Seen == 6 })

	st, err := c.GetFlows(context.Background(), &observerpb.GetFlowsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for {
		r, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[r.GetFlow().GetSource().GetPodName()] = r.GetNodeName() + "/" + r.GetFlow().GetNodeName()
	}
	for _, n := range []string{"node-1", "node-2", "node-3"} {
		for _, p := range []string{"web-", "api-"} {
			if got[p+n] != n+"/"+n {
				t.Errorf("flow of %s%s came with node %q, want %s", p, n, got[p+n], n)
			}
		}
	}

	agents[2].stop()
	waitFor(t, "node-3 reported unavailable", func() bool {
		return nodeStates(t, c) == "node-1=CONNECTED node-2=CONNECTED node-3=UNAVAILABLE"
	})
	status, err := c.ServerStatus(context.Background(), &observerpb.ServerStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if status.GetNumConnectedNodes().GetValue() != 2 || status.GetNumUnavailableNodes().GetValue() != 1 ||
		fmt.Sprint(status.GetUnavailableNodes()) != "[node-3]" {
		t.Errorf("status %v, want 2 connected and node-3 unavailable", status)
	}
}

// A client of the relay that reads nothing holds up neither the relay's
// following of the agents nor the agents: the relay keeps storing, and the
// slow client is told how many flows it lost when it reads again.
func TestSlowClientDoesNotSlowPeers(t *testing.T) {
	a := startAgent(t, "node-1", nil)
	c, _, store := startRelay(t, []Peer{{Name: "node-1", Address: a.addr}},
		[]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())})
	waitFor(t, "the peer connected", func() bool { return nodeStates(t, c) == "node-1=CONNECTED" })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	slow, err := c.GetFlows(ctx, &observerpb.GetFlowsRequest{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	// Three times the relay's ring, in batches the agent's ring holds.
	const n, batch = 200000, 20000
	for i := 0; i < n; i += batch {
		for j := i; j < i+batch; j++ {
			a.flow("web", j)
		}
		waitFor(t, "the batch relayed while the client reads nothing", func() bool { return store.Stats().Seen == uint64(i+batch) })
	}
	var lost uint64
	for lost == 0 {
		r, err := slow.Recv()
		if err != nil {
			t.Fatal(err)
		}
		lost += r.GetLostEvents().GetNumEventsLost()
	}
	if lost == 0 || lost >= n {
		t.Errorf("slow client lost %d flows", lost)
	}
}
