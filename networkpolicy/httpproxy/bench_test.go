package httpproxy

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// BenchmarkProxyLoopback is the proxy's own cost per request on a kept-alive
// connection, without the kernel: client, proxy and server on loopback.
func BenchmarkProxyLoopback(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "Ship landed") })
	ev := newEnv(b, h, false, Config{})
	go func() {
		for range ev.flowCh {
		}
	}()
	c := ev.dial(0x0201)
	br := bufio.NewReader(c)
	b.ReportAllocs()
	for b.Loop() {
		fmt.Fprintf(c, "POST /v1/request-landing HTTP/1.1\r\nHost: deathstar\r\nContent-Length: 0\r\n\r\n")
		if code, _ := readResponse(b, br, "POST"); code != 200 {
			b.Fatalf("code %d", code)
		}
	}
}

// BenchmarkGRPCLoopback is a unary gRPC call on one connection, direct and
// through the proxy on a visibility port (each stream read and reported):
// client, proxy and server on loopback.
func BenchmarkGRPCLoopback(b *testing.B) {
	sl, err := net.Listen("tcp4", deathstarIP+":0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("deathstar", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(sl)
	b.Cleanup(srv.Stop)
	ev := newBareEnv(b)
	ev.startProxy(netip.MustParseAddrPort(sl.Addr().String()), true, Config{})
	go func() {
		for range ev.flowCh {
		}
	}()
	var slot atomic.Uint32 // a slot is taken once
	for _, bb := range []struct {
		name string
		dial func() net.Conn
	}{
		{"direct", func() net.Conn {
			c, err := net.Dial("tcp4", sl.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			return c
		}},
		{"proxied", func() net.Conn { return ev.dial(0x0700 + slot.Add(1)) }},
	} {
		b.Run(bb.name, func(b *testing.B) {
			cc, err := grpc.NewClient("passthrough:///deathstar", grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) { return bb.dial(), nil }))
			if err != nil {
				b.Fatal(err)
			}
			defer cc.Close()
			hc := healthpb.NewHealthClient(cc)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "deathstar"}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
