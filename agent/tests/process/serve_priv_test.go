package process_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/agent"
	"github.com/vigilsec/vigil/agent/agenttest"
	"github.com/vigilsec/vigil/exporter"
	"github.com/vigilsec/vigil/internal/kerneltest"
)

// A metrics address in use stops the agent before it loads anything into
// the kernel: the error names the flag, and no program is left behind.
func TestPrivMetricsAddrInUse(t *testing.T) {
	kerneltest.Require(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	agenttest.FatalIf(t, err)
	defer taken.Close()
	cfg := agent.DefaultConfig()
	cfg.NodeName = "test-node"
	cfg.MetricsAddr = taken.Addr().String()
	cfg.SocketPath = ""
	cfg.Export = exporter.DefaultConfig()
	log := logrus.New()
	log.SetOutput(io.Discard)
	a, err := agent.New(cfg, log)
	agenttest.FatalIf(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), agenttest.Timeout())
	defer cancel()
	err = a.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "--metrics-addr "+taken.Addr().String()) {
		t.Fatalf("Run with the metrics port taken: %v, want an error naming --metrics-addr", err)
	}
	if progs, maps := agenttest.CountGenericObjects(t); progs != 0 || maps != 0 {
		t.Errorf("%d programs and %d maps of the tracing sensor left after the failed start", progs, maps)
	}
}

// --pprof-addr serves Go's profiles on loopback.
func TestPrivPprof(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	agenttest.FatalIf(t, err)
	addr := ln.Addr().String()
	ln.Close()
	agenttest.StartAgent(t, func(c *agent.Config) { c.PprofAddr = addr })
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
	agenttest.FatalIf(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile:") {
		t.Errorf("GET /debug/pprof/goroutine: %s\n%.300s", resp.Status, body)
	}
}
