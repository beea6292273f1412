package httpproxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func newBareEnv(t testing.TB) *env {
	return &env{t: t, flowCh: make(chan *Flow, 100), seen: make(chan string, 100)}
}

// TestGRPCVisibility: gRPC calls through a visibility port reach a real
// gRPC server and each is one flow with its path, HTTP status and gRPC
// status.
func TestGRPCVisibility(t *testing.T) {
	sl, err := net.Listen("tcp4", deathstarIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("deathstar", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(sl)
	t.Cleanup(srv.Stop)
	ev := newBareEnv(t)
	ev.startProxy(netip.MustParseAddrPort(sl.Addr().String()), true, Config{Headers: []string{"x-request-id"}})
	var slot atomic.Uint32
	slot.Store(0x0300)
	cc, err := grpc.NewClient("passthrough:///deathstar", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ev.dial(slot.Add(1)), nil }))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	hc := healthpb.NewHealthClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := hc.Check(metadata.AppendToOutgoingContext(ctx, "x-request-id", "r1"), &healthpb.HealthCheckRequest{Service: "deathstar"})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("check through the proxy: %v %v", resp, err)
	}
	_, err = hc.Check(metadata.AppendToOutgoingContext(ctx, "x-request-id", "r2"), &healthpb.HealthCheckRequest{Service: "exhaust-port"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("unknown service: %v, want NotFound", err)
	}
	var got []string
	for range 2 {
		f := ev.flow()
		got = append(got, fmt.Sprintf("%s %s %s %s %d %v %s->%s tgid=%d req>0:%v resp>0:%v", f.Verdict, f.HTTP.Method, f.HTTP.URL, f.HTTP.Protocol,
			f.HTTP.Code, f.HTTP.Headers, f.From, f.To, f.Conn.TGID, f.HTTP.RequestBytes > 0, f.HTTP.ResponseBytes > 0))
		if f.HTTP.Latency <= 0 || f.HTTP.L7Type() != "RESPONSE" {
			t.Errorf("latency %v, type %s", f.HTTP.Latency, f.HTTP.L7Type())
		}
	}
	want := []string{
		"FORWARDED POST http://deathstar/grpc.health.v1.Health/Check HTTP/2 200 [{x-request-id r1} {grpc-status 0}] default/tiefighter->default/deathstar tgid=7 req>0:true resp>0:true",
		// Trailers only: the error has no message body.
		"FORWARDED POST http://deathstar/grpc.health.v1.Health/Check HTTP/2 200 [{x-request-id r2} {grpc-status 5}] default/tiefighter->default/deathstar tgid=7 req>0:true resp>0:false",
	}
	if d := fmt.Sprint(got); d != fmt.Sprint(want) {
		t.Errorf("flows\n%s\nwant\n%s", got, want)
	}
	if st := ev.p.Stats(); st.HTTP2Parsed != 1 || st.HTTP2Errors != 0 || st.Requests != 2 || st.Forwarded != 2 {
		t.Errorf("stats %+v", st)
	}
}

// TestHTTP2Visibility: a plain HTTP/2 request (x/net/http2 client and
// server, prior knowledge) is reported with its method, path and status.
func TestHTTP2Visibility(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "Panic: deathstar exploded", http.StatusInternalServerError)
	})
	ev := newEnv(t, h2c.NewHandler(mux, &http2.Server{}), true, Config{RedactQuery: true})
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(context.Context, string, string, *tls.Config) (net.Conn, error) {
		return ev.dial(0x0401), nil
	}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Get("http://deathstar/v1/exhaust-port?secret=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || resp.Proto != "HTTP/2.0" {
		t.Fatalf("%s %d %q", resp.Proto, resp.StatusCode, body)
	}
	f := ev.flow()
	if got := fmt.Sprintf("%s %s %s %d %v %d", f.HTTP.Method, f.HTTP.URL, f.HTTP.Protocol, f.HTTP.Code, f.HTTP.Headers, f.HTTP.ResponseBytes); got != fmt.Sprintf("GET http://deathstar/v1/exhaust-port HTTP/2 500 [] %d", len(body)) {
		t.Errorf("flow %s", got)
	}
}

// TestHTTP2Malformed: frames that do not parse stop the reading (counted)
// and nothing is reported, but every byte still reaches the server and
// its answer the client.
func TestHTTP2Malformed(t *testing.T) {
	sl, err := net.Listen("tcp4", deathstarIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer sl.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := sl.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- b
		_, _ = c.Write([]byte("reply"))
	}()
	ev := newBareEnv(t)
	ev.startProxy(netip.MustParseAddrPort(sl.Addr().String()), true, Config{})

	var out bytes.Buffer
	out.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&out, nil)
	_ = fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range []hpack.HeaderField{{Name: ":method", Value: "POST"}, {Name: ":path", Value: "/a.B/C"}, {Name: ":scheme", Value: "http"}, {Name: ":authority", Value: "deathstar"}} {
		_ = enc.WriteField(f)
	}
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true})
	// A header block that indexes past any table.
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: []byte{0xff, 0xff, 0xff, 0x7f}, EndHeaders: true})
	out.WriteString("and then anything at all\x00\xff")
	sent := out.Bytes()

	c := ev.dial(0x0501)
	if _, err := c.Write(sent); err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).CloseWrite()
	if answer := readAll(t, c); answer != "reply" {
		t.Errorf("client got %q", answer)
	}
	select {
	case b := <-got:
		if !bytes.Equal(b, sent) {
			t.Errorf("server got %d bytes %q,\nwant %d %q", len(b), b, len(sent), sent)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server got nothing")
	}
	// The stream open when parsing stopped is reported without response
	// when the connection ends.
	f := ev.flow()
	if f.HTTP.URL != "http://deathstar/a.B/C" || f.HTTP.Code != 0 || f.HTTP.L7Type() != "REQUEST" {
		t.Errorf("flow %+v", f.HTTP)
	}
	if st := ev.p.Stats(); st.HTTP2Errors != 1 || st.HTTP2Parsed != 1 {
		t.Errorf("stats %+v", st)
	}
	select {
	case f := <-ev.flowCh:
		t.Errorf("reported %+v from what did not parse", f.HTTP)
	default:
	}
}

// TestHTTP2StreamCap: streams past h2MaxStreams open on one connection
// are forwarded, counted once and not reported.
func TestHTTP2StreamCap(t *testing.T) {
	sl, err := net.Listen("tcp4", deathstarIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer sl.Close()
	n := make(chan int, 1)
	go func() {
		c, err := sl.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		n <- len(b)
	}()
	ev := newBareEnv(t)
	ev.startProxy(netip.MustParseAddrPort(sl.Addr().String()), true, Config{})
	var out bytes.Buffer
	out.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&out, nil)
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for i := range h2MaxStreams + 3 {
		hb.Reset()
		for _, f := range []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":path", Value: fmt.Sprintf("/%d", i)}, {Name: ":scheme", Value: "http"}, {Name: ":authority", Value: "d"}} {
			_ = enc.WriteField(f)
		}
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: hb.Bytes(), EndHeaders: true, EndStream: true})
	}
	// Trailers of an untracked stream are not a new request.
	hb.Reset()
	_ = enc.WriteField(hpack.HeaderField{Name: "x-trailer", Value: "1"})
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 2*h2MaxStreams + 1, BlockFragment: hb.Bytes(), EndHeaders: true, EndStream: true})
	c := ev.dial(0x0601)
	if _, err := c.Write(out.Bytes()); err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).CloseWrite()
	readAll(t, c)
	if got := <-n; got != out.Len() {
		t.Errorf("server got %d bytes, want %d", got, out.Len())
	}
	for range h2MaxStreams {
		ev.flow()
	}
	if st := ev.p.Stats(); st.HTTP2StreamsDropped != 3 || st.Requests != h2MaxStreams {
		t.Errorf("stats %+v", st)
	}
}
