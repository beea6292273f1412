package hubble

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/vigilsec/vigil/event"
)

// serve starts an Observer server for store on loopback and returns a
// client of it and its address.
func serve(t *testing.T, store *Store) (observerpb.ObserverClient, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, lis, NewServer(store, ServerOptions{NodeName: "node-a", Address: lis.Addr().String()}))
	}()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return observerpb.NewObserverClient(conn), lis.Addr().String()
}

func newStore(t *testing.T, capacity int) *Store {
	t.Helper()
	s, err := NewStore(capacity)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fill stores n landings alternating between tiefighter (forwarded) and
// xwing (dropped), one second apart.
func fill(s *Store, c *Converter, n int) {
	for i := 0; i < n; i++ {
		if i%2 == 0 {
			s.Put(c.Convert(landing(tiefighter, "10.0.0.2", event.VerdictForwarded, time.Duration(i)*time.Second)))
		} else {
			s.Put(c.Convert(landing(xwing, "10.0.0.3", event.VerdictDropped, time.Duration(i)*time.Second)))
		}
	}
}

// recv reads responses until the stream ends or n arrived.
func recv(t *testing.T, st grpc.ServerStreamingClient[observerpb.GetFlowsResponse], n int) []*observerpb.GetFlowsResponse {
	t.Helper()
	var out []*observerpb.GetFlowsResponse
	for n <= 0 || len(out) < n {
		r, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		out = append(out, r)
	}
	return out
}

func pods(rs []*observerpb.GetFlowsResponse) string {
	var b []string
	for _, r := range rs {
		if f := r.GetFlow(); f != nil {
			b = append(b, f.GetSource().GetPodName()+":"+f.GetVerdict().String())
		} else if l := r.GetLostEvents(); l != nil {
			b = append(b, "lost:"+l.GetSource().String())
		}
	}
	return strings.Join(b, " ")
}

func TestGetFlows(t *testing.T) {
	store := newStore(t, 64)
	c := NewConverter("node-a", nil)
	fill(store, c, 6)
	client, _ := serve(t, store)
	ctx := context.Background()
	since := c.Convert(landing(xwing, "10.0.0.3", 0, 3*time.Second)).GetTime()

	tests := []struct {
		name string
		req  *observerpb.GetFlowsRequest
		want string
	}{
		{"last 3", &observerpb.GetFlowsRequest{Number: 3},
			"xwing:DROPPED tiefighter:FORWARDED xwing:DROPPED"},
		{"first 2", &observerpb.GetFlowsRequest{Number: 2, First: true},
			"tiefighter:FORWARDED xwing:DROPPED"},
		{"dropped only", &observerpb.GetFlowsRequest{Number: 10, Whitelist: []*flowpb.FlowFilter{{Verdict: []flowpb.Verdict{flowpb.Verdict_DROPPED}}}},
			"xwing:DROPPED xwing:DROPPED xwing:DROPPED"},
		{"since", &observerpb.GetFlowsRequest{Since: since},
			"xwing:DROPPED tiefighter:FORWARDED xwing:DROPPED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := client.GetFlows(ctx, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if got := pods(recv(t, st, 0)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}

	t.Run("field mask", func(t *testing.T) {
		st, err := client.GetFlows(ctx, &observerpb.GetFlowsRequest{Number: 1,
			FieldMask: &fieldmaskpb.FieldMask{Paths: []string{"verdict", "source.pod_name"}}})
		if err != nil {
			t.Fatal(err)
		}
		f := recv(t, st, 0)[0].GetFlow()
		if f.GetVerdict() != flowpb.Verdict_DROPPED || f.GetSource().GetPodName() != "xwing" ||
			f.GetSource().GetNamespace() != "" || f.GetIP() != nil || f.GetDestination() != nil {
			t.Errorf("masked flow %v, want only the verdict and the source's pod name", f)
		}
	})

	t.Run("bad filter", func(t *testing.T) {
		st, err := client.GetFlows(ctx, &observerpb.GetFlowsRequest{Whitelist: []*flowpb.FlowFilter{{SourceIp: []string{"x"}}}})
		if err == nil {
			_, err = st.Recv()
		}
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "whitelist[0].source_ip[0]") {
			t.Errorf("error %v, want InvalidArgument naming whitelist[0].source_ip[0]", err)
		}
	})
}

func TestGetFlowsFollow(t *testing.T) {
	store := newStore(t, 16)
	c := NewConverter("node-a", nil)
	fill(store, c, 2)
	client, _ := serve(t, store)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := client.GetFlows(ctx, &observerpb.GetFlowsRequest{Number: 1, Follow: true,
		Whitelist: []*flowpb.FlowFilter{{SourcePod: []string{"default/xwing"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := pods(recv(t, st, 1)); got != "xwing:DROPPED" {
		t.Fatalf("history %q, want the last xwing flow", got)
	}
	fill(store, c, 4)
	if got := pods(recv(t, st, 2)); got != "xwing:DROPPED xwing:DROPPED" {
		t.Errorf("followed %q, want the two new xwing flows", got)
	}
	// Flows lost before the store are reported as the observer queue's.
	store.AddLost(3)
	fill(store, c, 2)
	rs := recv(t, st, 2)
	if got := pods(rs); got != "lost:OBSERVER_EVENTS_QUEUE xwing:DROPPED" {
		t.Errorf("got %q, want a lost event, then the xwing flow", got)
	} else if n := rs[0].GetLostEvents().GetNumEventsLost(); n != 3 {
		t.Errorf("lost %d, want 3", n)
	}
}

// A follower that cannot keep up learns how many flows the ring overwrote
// and the store never waits for it.
func TestGetFlowsSlowFollower(t *testing.T) {
	store := newStore(t, 16)
	c := NewConverter("node-a", nil)
	for i := 0; i < 40; i++ {
		store.Put(c.Convert(landing(xwing, "10.0.0.3", event.VerdictDropped, time.Duration(i))))
	}
	got, next, lost := store.Read(nil, 0, 0)
	if len(got) != 16 || next != 40 || lost != 24 {
		t.Errorf("Read from 0: %d flows, next %d, lost %d; want 16, 40, 24", len(got), next, lost)
	}
}

func TestServerStatusAndNodes(t *testing.T) {
	store := newStore(t, 100)
	fill(store, NewConverter("node-a", nil), 5)
	client, addr := serve(t, store)
	st, err := client.ServerStatus(context.Background(), &observerpb.ServerStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetNumFlows() != 5 || st.GetMaxFlows() != 128 || st.GetSeenFlows() != 5 || st.GetNumConnectedNodes().GetValue() != 1 {
		t.Errorf("status %v, want 5 of 128 flows, 5 seen, one node", st)
	}
	nodes, err := client.GetNodes(context.Background(), &observerpb.GetNodesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.GetNodes()) != 1 || nodes.GetNodes()[0].GetName() != "node-a" || nodes.GetNodes()[0].GetAddress() != addr {
		t.Errorf("nodes %v, want node-a at %s", nodes, addr)
	}
	ns, err := client.GetNamespaces(context.Background(), &observerpb.GetNamespacesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ns.GetNamespaces()) != 1 || ns.GetNamespaces()[0].GetNamespace() != "default" {
		t.Errorf("namespaces %v, want default", ns)
	}
}
