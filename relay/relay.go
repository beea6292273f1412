package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	observerpb "github.com/cilium/cilium/api/v1/observer"
	relaypb "github.com/cilium/cilium/api/v1/relay"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilsec/vigil/apiauth"
	"github.com/vigilsec/vigil/hubble"
	"github.com/vigilsec/vigil/internal/kubeclient"
	"github.com/vigilsec/vigil/ui"
)

// Log field keys.
const (
	logFieldPeer    = "peer"
	logFieldAddress = "address"
)

// Relay follows its peers into one store.
type Relay struct {
	store *hubble.Store
	dial  []grpc.DialOption
	log   logrus.FieldLogger

	mu    sync.Mutex
	peers map[string]*peer
}

type peer struct {
	Peer
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	connected bool
	err       string
	flows     uint64
	since     time.Time
}

// New returns a relay that stores into store and dials peers with dial.
func New(store *hubble.Store, dial []grpc.DialOption, log logrus.FieldLogger) *Relay {
	return &Relay{store: store, dial: dial, log: log, peers: map[string]*peer{}}
}

// Run follows the peers disc reports until ctx ends.
func (r *Relay) Run(ctx context.Context, disc Discovery) error {
	err := disc.Run(ctx, func(ps []Peer) { r.setPeers(ctx, ps) })
	r.setPeers(ctx, nil)
	return err
}

// setPeers starts following new peers and stops following those gone (or
// moved to another address).
func (r *Relay) setPeers(ctx context.Context, ps []Peer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	want := map[string]Peer{}
	for _, p := range ps {
		want[p.Name] = p
	}
	for name, p := range r.peers {
		if w, ok := want[name]; !ok || w.Address != p.Address {
			p.cancel()
			<-p.done
			delete(r.peers, name)
			r.log.WithField(logFieldPeer, name).Info("peer gone")
		}
	}
	for name, w := range want {
		if _, ok := r.peers[name]; ok {
			continue
		}
		pctx, cancel := context.WithCancel(ctx)
		p := &peer{Peer: w, cancel: cancel, done: make(chan struct{})}
		r.peers[name] = p
		go func() {
			defer close(p.done)
			r.follow(pctx, p)
		}()
		r.log.WithFields(logrus.Fields{logFieldPeer: name, logFieldAddress: w.Address}).Info("following peer")
	}
}

// follow keeps one GetFlows stream open to p, reconnecting with backoff,
// and stores every flow it receives. A reconnection asks for the flows
// since the last one received, so a short outage loses nothing the peer
// still holds.
func (r *Relay) follow(ctx context.Context, p *peer) {
	backoff := 500 * time.Millisecond
	for ctx.Err() == nil {
		err := r.stream(ctx, p)
		if ctx.Err() != nil {
			return
		}
		p.mu.Lock()
		wasConnected := p.connected
		p.connected = false
		if err != nil {
			p.err = err.Error()
		}
		p.mu.Unlock()
		if wasConnected {
			backoff = 500 * time.Millisecond
		}
		r.log.WithError(err).WithField(logFieldPeer, p.Name).Debug("peer stream ended")
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

func (r *Relay) stream(ctx context.Context, p *peer) error {
	conn, err := grpc.NewClient(p.Address, r.dial...)
	if err != nil {
		return err
	}
	defer conn.Close()
	req := &observerpb.GetFlowsRequest{Follow: true}
	p.mu.Lock()
	since := p.since
	p.mu.Unlock()
	if since.IsZero() {
		req.Number = uint64(r.store.Capacity())
	} else {
		req.Since = timestamppb.New(since)
	}
	st, err := observerpb.NewObserverClient(conn).GetFlows(ctx, req)
	if err != nil {
		return err
	}
	// The stream is up once the peer answered the call's headers.
	if _, err := st.Header(); err != nil {
		return err
	}
	p.mu.Lock()
	p.connected, p.err = true, ""
	p.mu.Unlock()
	for {
		resp, err := st.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("the peer ended the stream")
			}
			return err
		}
		switch {
		case resp.GetFlow() != nil:
			f := resp.GetFlow()
			t := f.GetTime().AsTime()
			if !since.IsZero() && !t.After(since) {
				continue // held from before the reconnection
			}
			if f.GetNodeName() == "" {
				f.NodeName = p.Name
			}
			r.store.Put(f)
			p.mu.Lock()
			p.flows++
			if t.After(p.since) {
				p.since = t
			}
			p.mu.Unlock()
		case resp.GetLostEvents() != nil:
			r.store.AddLost(resp.GetLostEvents().GetNumEventsLost())
		}
	}
}

// Nodes lists the peers for the Observer API's GetNodes.
func (r *Relay) Nodes() []*observerpb.Node {
	var out []*observerpb.Node
	for _, p := range r.snapshot() {
		n := &observerpb.Node{Name: p.Name, Address: p.Address, Version: hubble.Version, SeenFlows: p.flows,
			State: relaypb.NodeState_NODE_UNAVAILABLE}
		if p.connected {
			n.State = relaypb.NodeState_NODE_CONNECTED
		}
		out = append(out, n)
	}
	return out
}

// UINodes lists the peers for the web UI.
func (r *Relay) UINodes() []ui.NodeStatus {
	var out []ui.NodeStatus
	for _, p := range r.snapshot() {
		out = append(out, ui.NodeStatus{Name: p.Name, Address: p.Address, Connected: p.connected, Error: p.err})
	}
	return out
}

type peerState struct {
	Peer
	connected bool
	err       string
	flows     uint64
}

func (r *Relay) snapshot() []peerState {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]peerState, 0, len(r.peers))
	for _, p := range r.peers {
		p.mu.Lock()
		out = append(out, peerState{Peer: p.Peer, connected: p.connected, err: p.err, flows: p.flows})
		p.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b peerState) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Run is `vigil relay`: it validates cfg, finds the peers, follows them,
// and serves the cluster's flows until ctx ends.
func Run(ctx context.Context, cfg Config, log logrus.FieldLogger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	auth, err := apiauth.New(cfg.Auth)
	if err != nil {
		return fmt.Errorf("--api-*: %w", err)
	}
	dial, err := cfg.PeerTLS.DialOptions()
	if err != nil {
		return fmt.Errorf("--peer-tls-*: %w", err)
	}
	var disc Discovery
	if len(cfg.Peers) > 0 {
		ps, _ := cfg.staticPeers()
		disc = Static(ps)
	} else {
		clients, err := kubeclient.New(cfg.Kubeconfig)
		if err != nil {
			return fmt.Errorf("finding peers: %w", err)
		}
		disc = &Kubernetes{Client: clients.Dynamic, Namespace: cfg.Namespace, Selector: cfg.Selector, Port: cfg.PeerPort}
	}
	store, err := hubble.NewStore(cfg.FlowBuffer)
	if err != nil {
		return fmt.Errorf("--flow-buffer: %w", err)
	}
	r := New(store, dial, log)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	run := func(fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(); err != nil {
				errc <- err
				cancel()
			}
		}()
	}
	if cfg.HubbleAddr != "" {
		lis, err := net.Listen("tcp", cfg.HubbleAddr)
		if err != nil {
			return fmt.Errorf("--hubble-addr: %w", err)
		}
		srv := hubble.NewServer(store, hubble.ServerOptions{NodeName: "relay", Nodes: r.Nodes})
		run(func() error { return hubble.Serve(ctx, lis, srv, auth.GRPCOptions()...) })
		log.WithField(logFieldAddress, lis.Addr().String()).Info("Hubble Observer API serving the cluster")
	}
	if cfg.Addr != "" {
		lis, err := auth.Listen(cfg.Addr)
		if err != nil {
			cancel()
			wg.Wait()
			return fmt.Errorf("--ui-addr: %w", err)
		}
		srv, err := ui.NewServer(store, auth, ui.Options{Mode: "relay", Nodes: r.UINodes}, log)
		if err != nil {
			lis.Close()
			cancel()
			wg.Wait()
			return err
		}
		run(func() error { return srv.Run(ctx) })
		run(func() error { return ui.Serve(ctx, lis, srv.Handler(), log) })
		log.WithField(logFieldAddress, lis.Addr().String()).Info("web UI serving the cluster")
	}
	run(func() error { return r.Run(ctx, disc) })
	<-ctx.Done()
	wg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
