package hubble

import (
	"context"
	"errors"
	"net"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	relaypb "github.com/cilium/cilium/api/v1/relay"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Server implements Hubble's Observer service over a Store. It is read-only:
// nothing a client sends changes what the agent does.
type Server struct {
	observerpb.UnimplementedObserverServer

	store *Store
	opts  ServerOptions
}

var _ observerpb.ObserverServer = (*Server)(nil)

// ServerOptions describe the node (or the cluster, for the relay) that a
// Server speaks for.
type ServerOptions struct {
	// NodeName names the agent's node in GetNodes.
	NodeName string
	// Address is the node's API address in GetNodes.
	Address string
	// TLS says whether the API is served with TLS (GetNodes).
	TLS bool
	// Nodes, when set, answers GetNodes instead of the one local node (the
	// relay lists its peers).
	Nodes func() []*observerpb.Node
}

// NewServer returns an Observer service for the flows of store.
func NewServer(store *Store, opts ServerOptions) *Server {
	return &Server{store: store, opts: opts}
}

// maxBatch bounds the flows a follower takes from the store at once.
const maxBatch = 1024

// GetFlows sends the stored flows that pass the request's filters and time
// range (the last Number of them, or the first with First), then, with
// Follow, every new one until the client goes away. A follower that falls
// behind the store receives a LostEvent with the number of flows it missed
// instead of slowing anything down.
func (s *Server) GetFlows(req *observerpb.GetFlowsRequest, stream grpc.ServerStreamingServer[observerpb.GetFlowsResponse]) error {
	filter, err := CompileFilter(req.GetWhitelist(), req.GetBlacklist())
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "%v", err)
	}
	mask, err := compileFieldMask(req.GetFieldMask())
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "%v", err)
	}
	var since, until time.Time
	if req.GetSince() != nil {
		if err := req.GetSince().CheckValid(); err != nil {
			return status.Errorf(codes.InvalidArgument, "since: %v", err)
		}
		since = req.GetSince().AsTime()
	}
	if req.GetUntil() != nil {
		if err := req.GetUntil().CheckValid(); err != nil {
			return status.Errorf(codes.InvalidArgument, "until: %v", err)
		}
		until = req.GetUntil().AsTime()
		if !since.IsZero() && until.Before(since) {
			return status.Errorf(codes.InvalidArgument, "until %s is before since %s", until, since)
		}
	}
	inRange := func(f *flowpb.Flow) bool {
		t := f.GetTime().AsTime()
		return (since.IsZero() || !t.Before(since)) && (until.IsZero() || !t.After(until))
	}
	send := func(f *flowpb.Flow) error {
		return stream.Send(&observerpb.GetFlowsResponse{
			ResponseTypes: &observerpb.GetFlowsResponse_Flow{Flow: mask.apply(f)},
			NodeName:      f.GetNodeName(), Time: f.GetTime(),
		})
	}

	// Headers first, so that a follower knows the stream is up before the
	// first flow (the relay reports the peer as connected).
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	oldest, next := s.store.Oldest()
	upstream := s.store.Lost()
	number := req.GetNumber()
	history := !(req.GetFollow() && number == 0 && since.IsZero())
	if history {
		held, _, _ := s.store.Read(nil, oldest, int(next-oldest))
		matched := held[:0]
		for _, f := range held {
			if inRange(f) && filter.Match(f) {
				matched = append(matched, f)
			}
		}
		if number > 0 && uint64(len(matched)) > number {
			if req.GetFirst() {
				matched = matched[:number]
			} else {
				matched = matched[uint64(len(matched))-number:]
			}
		}
		for _, f := range matched {
			if err := send(f); err != nil {
				return err
			}
		}
	}
	if !req.GetFollow() {
		return nil
	}

	ctx := stream.Context()
	seq := next
	var batch []*flowpb.Flow
	for {
		if err := s.store.Wait(ctx, seq); err != nil {
			return nil // the client went away
		}
		var lost uint64
		batch, seq, lost = s.store.Read(batch[:0], seq, maxBatch)
		if lost > 0 {
			if err := s.sendLost(stream, flowpb.LostEventSource_HUBBLE_RING_BUFFER, lost); err != nil {
				return err
			}
		}
		if u := s.store.Lost(); u != upstream {
			if err := s.sendLost(stream, flowpb.LostEventSource_OBSERVER_EVENTS_QUEUE, u-upstream); err != nil {
				return err
			}
			upstream = u
		}
		for _, f := range batch {
			if !until.IsZero() && f.GetTime().AsTime().After(until) {
				return nil
			}
			if inRange(f) && filter.Match(f) {
				if err := send(f); err != nil {
					return err
				}
			}
		}
		clear(batch)
		// Let flows gather: a follower is sent batches, not woken per flow.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(followInterval):
		}
	}
}

// followInterval is how long a follower lets flows gather between reads.
const followInterval = 10 * time.Millisecond

func (s *Server) sendLost(stream grpc.ServerStreamingServer[observerpb.GetFlowsResponse], src flowpb.LostEventSource, n uint64) error {
	now := timestamppb.Now()
	return stream.Send(&observerpb.GetFlowsResponse{
		ResponseTypes: &observerpb.GetFlowsResponse_LostEvents{LostEvents: &flowpb.LostEvent{Source: src, NumEventsLost: n, Last: now}},
		NodeName:      s.opts.NodeName, Time: now,
	})
}

// ServerStatus reports the store's counts (and, for the relay, its peers).
func (s *Server) ServerStatus(context.Context, *observerpb.ServerStatusRequest) (*observerpb.ServerStatusResponse, error) {
	st := s.store.Stats()
	out := &observerpb.ServerStatusResponse{
		NumFlows: uint64(st.Held), MaxFlows: uint64(st.Capacity), SeenFlows: st.Seen,
		UptimeNs: uint64(st.Uptime.Nanoseconds()), Version: Version, FlowsRate: st.Rate,
	}
	var connected, unavailable uint32
	for _, n := range s.nodes() {
		if n.GetState() == relayConnected {
			connected++
		} else {
			unavailable++
			out.UnavailableNodes = append(out.UnavailableNodes, n.GetName())
		}
	}
	out.NumConnectedNodes = wrapperspb.UInt32(connected)
	out.NumUnavailableNodes = wrapperspb.UInt32(unavailable)
	return out, nil
}

// GetNodes lists the node this server speaks for, or the relay's peers.
func (s *Server) GetNodes(context.Context, *observerpb.GetNodesRequest) (*observerpb.GetNodesResponse, error) {
	return &observerpb.GetNodesResponse{Nodes: s.nodes()}, nil
}

func (s *Server) nodes() []*observerpb.Node {
	if s.opts.Nodes != nil {
		return s.opts.Nodes()
	}
	st := s.store.Stats()
	return []*observerpb.Node{{
		Name: s.opts.NodeName, Version: Version, Address: s.opts.Address, State: relayConnected,
		Tls: &observerpb.TLS{Enabled: s.opts.TLS}, UptimeNs: uint64(st.Uptime.Nanoseconds()),
		NumFlows: uint64(st.Held), MaxFlows: uint64(st.Capacity), SeenFlows: st.Seen,
	}}
}

// GetNamespaces lists the namespaces of the stored flows' endpoints.
func (s *Server) GetNamespaces(context.Context, *observerpb.GetNamespacesRequest) (*observerpb.GetNamespacesResponse, error) {
	oldest, next := s.store.Oldest()
	held, _, _ := s.store.Read(nil, oldest, int(next-oldest))
	seen := map[string]bool{}
	out := &observerpb.GetNamespacesResponse{}
	for _, f := range held {
		for _, ep := range []*flowpb.Endpoint{f.GetSource(), f.GetDestination()} {
			if ns := ep.GetNamespace(); ns != "" && !seen[ns] {
				seen[ns] = true
				out.Namespaces = append(out.Namespaces, &observerpb.Namespace{Namespace: ns})
			}
		}
	}
	return out, nil
}

// Serve serves srv on lis until ctx ends, then stops gracefully (at most a
// second for open streams).
func Serve(ctx context.Context, lis net.Listener, srv observerpb.ObserverServer, opts ...grpc.ServerOption) error {
	gs := grpc.NewServer(opts...)
	observerpb.RegisterObserverServer(gs, srv)
	// hubble status asks the standard health service first, under the
	// name Hubble's server registers.
	hs := health.NewServer()
	hs.SetServingStatus("hubble.server.Observer", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(observerpb.Observer_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
			return
		}
		stopped := make(chan struct{})
		go func() { gs.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(time.Second):
			gs.Stop()
		}
	}()
	err := gs.Serve(lis)
	close(done)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

const relayConnected = relaypb.NodeState_NODE_CONNECTED
