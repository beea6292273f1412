package sink

import (
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/exporter/spool"
)

// receiver is a webhook endpoint that refuses requests while down and
// records the pids of every line it accepts.
type receiver struct {
	t        *testing.T
	mu       sync.Mutex
	pids     []int
	down     atomic.Bool
	status   atomic.Int32 // status while down
	requests atomic.Int32
	header   http.Header
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.requests.Add(1)
	if r.down.Load() {
		w.WriteHeader(int(r.status.Load()))
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	data, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.header = req.Header.Clone()
	r.pids = append(r.pids, pidsOf(r.t, data)...)
	w.WriteHeader(http.StatusAccepted)
}

func (r *receiver) got() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.pids...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWebhookOutage: the receiver answers 503 for a while, then recovers.
// Every line arrives exactly once and in order.
func TestWebhookOutage(t *testing.T) {
	rcv := &receiver{t: t}
	rcv.status.Store(http.StatusServiceUnavailable)
	rcv.down.Store(true)
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	var c tally
	s, err := NewWebhook(WebhookOptions{
		URL: srv.URL, Gzip: true, BatchBytes: 32 << 10, BatchInterval: 50 * time.Millisecond,
		MaxRetryInterval: 100 * time.Millisecond,
		Headers:          map[string][]string{"Authorization": {"Splunk 1234"}},
		SpoolDir:         t.TempDir(), Spool: spool.Options{MemoryBytes: 64 << 10, SegmentBytes: 256 << 10},
	}, c.hooks())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	const total = 6000
	for i := 0; i < total; i += 50 {
		s.Write(ctx, chunk(i, i+50), 50)
		if i == total/2 {
			time.Sleep(300 * time.Millisecond)
			if n := rcv.requests.Load(); n == 0 {
				t.Fatal("no delivery attempt during the outage")
			}
			if st := s.Spooled(); st.DiskBytes <= 64<<10 {
				t.Errorf("spool holds %d bytes on disk during the outage, want more than memory holds", st.DiskBytes)
			}
			rcv.down.Store(false)
		}
	}
	waitFor(t, "all lines delivered", func() bool { return c.delivered.Load() == total })
	cancel()
	<-done
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(seq(0, total), rcv.got()); diff != "" {
		t.Errorf("received (-want +got):\n%s", diff)
	}
	if len(c.lost) != 0 {
		t.Errorf("lost %v", c.lost)
	}
	h := rcv.header
	if h.Get("Authorization") != "Splunk 1234" || h.Get("Content-Type") != "application/x-ndjson" || h.Get("Content-Encoding") != "gzip" {
		t.Errorf("headers %v", h)
	}
}

func TestWebhookRefusedBatch(t *testing.T) {
	rcv := &receiver{t: t}
	rcv.status.Store(http.StatusBadRequest)
	rcv.down.Store(true)
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	var c tally
	s, err := NewWebhook(WebhookOptions{URL: srv.URL, BatchInterval: 20 * time.Millisecond}, c.hooks())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go s.Run(ctx)
	s.Write(ctx, chunk(0, 7), 7)
	waitFor(t, "the refused batch to be counted", func() bool { return c.lostBy(ReasonSinkError) == 7 })
	rcv.down.Store(false)
	s.Write(ctx, chunk(7, 10), 3)
	waitFor(t, "the next batch", func() bool { return c.delivered.Load() == 3 })
	cancel()
	s.Close(context.Background())
	if diff := cmp.Diff(seq(7, 10), rcv.got()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestWebhookResumeAfterRestart: batches spooled while the receiver is
// down survive a restart and are delivered, in order, by the next run.
func TestWebhookResumeAfterRestart(t *testing.T) {
	dir := t.TempDir()
	down := &receiver{t: t}
	down.status.Store(http.StatusBadGateway)
	down.down.Store(true)
	srv := httptest.NewServer(down)
	opts := WebhookOptions{URL: srv.URL, BatchBytes: 8 << 10, BatchInterval: 20 * time.Millisecond,
		MaxRetryInterval: 50 * time.Millisecond, SpoolDir: dir}
	var c1 tally
	s, err := NewWebhook(opts, c1.hooks())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go s.Run(ctx)
	for i := 0; i < 1000; i += 100 {
		s.Write(ctx, chunk(i, i+100), 100)
	}
	time.Sleep(100 * time.Millisecond)
	cancel()
	flush, cancelFlush := context.WithTimeout(context.Background(), 100*time.Millisecond)
	s.Close(flush)
	cancelFlush()
	srv.Close()
	if len(c1.lost) != 0 || c1.delivered.Load() != 0 {
		t.Fatalf("first run: delivered %d, lost %v; want everything spooled", c1.delivered.Load(), c1.lost)
	}

	up := &receiver{t: t}
	srv = httptest.NewServer(up)
	defer srv.Close()
	opts.URL = srv.URL
	var c2 tally
	s, err = NewWebhook(opts, c2.hooks())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	go s.Run(ctx)
	waitFor(t, "the spooled lines", func() bool { return c2.delivered.Load() == 1000 })
	cancel()
	s.Close(context.Background())
	if diff := cmp.Diff(seq(0, 1000), up.got()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestWebhookBadURL(t *testing.T) {
	for _, u := range []string{"ftp://x/", "http://", "::"} {
		if _, err := NewWebhook(WebhookOptions{URL: u}, Hooks{}); err == nil {
			t.Errorf("NewWebhook(%q) succeeded", u)
		}
	}
}
