package exporter

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestWebhookOutageThroughExporter: the receiver fails with 503 for a while
// and recovers; every exported event arrives exactly once, in order, and
// nothing is counted lost.
func TestWebhookOutageThroughExporter(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	var mu sync.Mutex
	var pids []int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		data, _ := io.ReadAll(zr)
		mu.Lock()
		defer mu.Unlock()
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			var ev struct {
				Exec *struct {
					Process struct{ PID int } `json:"process"`
				} `json:"process_exec"`
			}
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Errorf("bad line %q", sc.Text())
			}
			if ev.Exec != nil {
				pids = append(pids, ev.Exec.Process.PID)
			}
		}
	}))
	defer srv.Close()

	cfg := DefaultConfig()
	cfg.NodeName = "node-a"
	cfg.Stdout = false
	cfg.Webhook = srv.URL
	cfg.WebhookSpoolDir = t.TempDir()
	cfg.WebhookMemoryMB = 1
	cfg.WebhookBatchMaxBytes = 16 << 10
	cfg.WebhookBatchInterval = Duration(50 * time.Millisecond)
	cfg.WebhookRetryMaxInterval = Duration(100 * time.Millisecond)
	cfg.LostEventsInterval = Duration(time.Hour)
	e, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	const n = 10000
	for i := 0; i < n; i++ {
		e.Export(execEvent(proc(uint32(i), "/usr/bin/curl", "-s https://example.com/some/path?with=query", nil)))
		if i == n/2 {
			time.Sleep(500 * time.Millisecond) // half a second of outage with events queued
			down.Store(false)
		}
		if i%500 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		got := len(pids)
		mu.Unlock()
		if got >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := make([]int, n)
	for i := range want {
		want[i] = i
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(want, pids); diff != "" {
		t.Errorf("received (-want +got):\n%s", diff)
	}
	if l := e.Lost(ReasonQueueFull) + e.Lost(ReasonSinkError); l != 0 {
		t.Errorf("%d events counted lost", l)
	}
}
