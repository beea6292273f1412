package exporter

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// runExporter starts an exporter with its own registry and returns it with
// a function that stops it.
func runExporter(t *testing.T, cfg Config) (*Exporter, *prometheus.Registry, func()) {
	t.Helper()
	reg := prometheus.NewRegistry()
	e, err := New(cfg, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	return e, reg, func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func waitMetric(t *testing.T, reg *prometheus.Registry, what string, cond func(map[string]float64) bool) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		m := gather(t, reg)
		if cond(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; metrics: %v", what, m)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWebhookMetrics: while the receiver fails, the spool fills and every
// failed attempt and retry is counted by reason; a refused batch is counted
// as a failure and as lost lines.
func TestWebhookMetrics(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusServiceUnavailable)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	cfg := DefaultConfig()
	cfg.Stdout = false
	cfg.Webhook = srv.URL
	cfg.WebhookSpoolDir = t.TempDir()
	cfg.WebhookBatchInterval = Duration(20 * time.Millisecond)
	cfg.WebhookRetryMaxInterval = Duration(50 * time.Millisecond)
	cfg.LostEventsInterval = Duration(time.Hour)
	e, reg, stop := runExporter(t, cfg)
	for i := 0; i < 50; i++ {
		e.Export(execEvent(proc(uint32(i), "/usr/bin/curl", "-s https://example.com/", nil)))
	}
	// The attempt's failure and the retry it leads to are counted one
	// after the other: wait for both rather than read them mid-update.
	m := waitMetric(t, reg, "two retries and three http_5xx failures while the receiver answers 503", func(m map[string]float64) bool {
		return m[`vigil_export_sink_retries_total{sink="webhook"}`] >= 2 &&
			m[`vigil_export_sink_failures_total{reason="http_5xx",sink="webhook"}`] >= 3 &&
			m[`vigil_export_webhook_spool_lines{}`] == 50
	})
	if m[`vigil_export_webhook_spool_batches{}`] < 1 || m[`vigil_export_webhook_spool_bytes{where="memory"}`] <= 0 {
		t.Errorf("spool gauges do not show the waiting batch: %v", m)
	}
	status.Store(http.StatusTooManyRequests)
	waitMetric(t, reg, "a 429", func(m map[string]float64) bool {
		return m[`vigil_export_sink_failures_total{reason="http_429",sink="webhook"}`] >= 1
	})
	status.Store(http.StatusBadRequest)
	m = waitMetric(t, reg, "the batch refused", func(m map[string]float64) bool {
		return m[`vigil_export_sink_failures_total{reason="http_refused",sink="webhook"}`] >= 1 && m[`vigil_export_webhook_spool_lines{}`] == 0
	})
	if got := m[`vigil_events_lost_total{reason="sink_error",sink="webhook"}`]; got != 50 {
		t.Errorf("lost = %v, want the 50 lines of the refused batch", got)
	}
	if m[`vigil_export_webhook_spool_bytes{where="memory"}`] != 0 || m[`vigil_export_webhook_spool_bytes{where="disk"}`] != 0 {
		t.Errorf("spool not empty after the batch left it: %v", m)
	}
	stop()
}

// TestSyslogMetrics: connection failures are counted and the connected
// gauge says 0 until the receiver is back; the new attempt is a retry.
func TestSyslogMetrics(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := DefaultConfig()
	cfg.Stdout = false
	cfg.Syslog = "tcp://" + addr
	cfg.LostEventsInterval = Duration(time.Hour)
	e, reg, stop := runExporter(t, cfg)
	defer stop()
	e.Export(execEvent(proc(1, "/bin/true", "", nil)))
	m := waitMetric(t, reg, "a failed connection", func(m map[string]float64) bool {
		return m[`vigil_export_sink_failures_total{reason="network",sink="syslog"}`] >= 1
	})
	if m[`vigil_export_syslog_connected{}`] != 0 {
		t.Errorf("connected = %v while the receiver is down", m[`vigil_export_syslog_connected{}`])
	}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening again on the receiver's port %s: %v", addr, err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, 4096)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	time.Sleep(600 * time.Millisecond) // the first backoff is 500ms
	e.Export(execEvent(proc(2, "/bin/true", "", nil)))
	m = waitMetric(t, reg, "the connection back", func(m map[string]float64) bool {
		return m[`vigil_export_syslog_connected{}`] == 1
	})
	if m[`vigil_export_sink_retries_total{sink="syslog"}`] < 1 {
		t.Errorf("retries = %v, want the reconnection counted", m[`vigil_export_sink_retries_total{sink="syslog"}`])
	}
	if m[`vigil_export_sink_lines_total{sink="syslog"}`] != 1 {
		t.Errorf("delivered = %v, want 1", m[`vigil_export_sink_lines_total{sink="syslog"}`])
	}
}
