package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/agent"
	"github.com/vigilsec/vigil/exporter"
	"github.com/vigilsec/vigil/internal/kerneltest"
)

// ev is one exported event, decoded as a user's parser would see it.
type ev map[string]any

// get walks a dotted path ("process_exec.process.binary").
func (e ev) get(path string) any {
	var cur any = map[string]any(e)
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

func (e ev) str(path string) string {
	s, _ := e.get(path).(string)
	return s
}

func (e ev) num(path string) float64 {
	f, _ := e.get(path).(float64)
	return f
}

func (e ev) String() string {
	b, _ := json.Marshal(e)
	return string(b)
}

// harness is an agent running in the test process, with every event it
// exports collected.
type harness struct {
	t      *testing.T
	socket string
	agent  *agent.Agent
	cancel context.CancelFunc
	done   chan error

	mu     sync.Mutex
	events []ev
	lines  [][]byte // as exported, for recording
	cond   *sync.Cond
}

// timeout scales waits for the VM tier, where everything runs emulated.
func timeout() time.Duration {
	if k, ok := kerneltest.Known(); ok && strings.HasPrefix(k.Name, "Debian") {
		return 90 * time.Second
	}
	if _, ok := kerneltest.Known(); !ok {
		return 60 * time.Second
	}
	return 20 * time.Second
}

// startAgent runs an agent with the test configuration, changed by mutate,
// and waits until it is ready.
func startAgent(t *testing.T, mutate func(*agent.Config)) *harness {
	t.Helper()
	kerneltest.Require(t)
	cfg := agent.DefaultConfig()
	cfg.NodeName = "test-node"
	cfg.MetricsAddr = ""
	cfg.UI.Addr, cfg.UI.HubbleAddr = "", ""
	cfg.SocketPath = filepath.Join(t.TempDir(), "vigil.sock")
	cfg.NoDefaultPolicies = true
	cfg.Rules.NoDefaultRules = true
	cfg.Export = exporter.DefaultConfig()
	cfg.Export.Stdout = false
	cfg.Export.File = filepath.Join(t.TempDir(), "events.json")
	if mutate != nil {
		mutate(&cfg)
	}
	log := logrus.New()
	log.SetOutput(testWriter{t})
	log.SetLevel(logrus.InfoLevel)
	a, err := agent.New(cfg, log)
	if err != nil {
		t.Fatalf("agent.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, socket: cfg.SocketPath, agent: a, cancel: cancel, done: make(chan error, 1)}
	h.cond = sync.NewCond(&h.mu)
	go func() { h.done <- a.Run(ctx) }()

	deadline := time.Now().Add(timeout())
	for !a.Ready() {
		select {
		case err := <-h.done:
			t.Fatalf("agent stopped before it was ready: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatal("agent not ready in time")
		}
		time.Sleep(20 * time.Millisecond)
	}
	sub := a.Subscribe(exporter.SubscribeOptions{Buffer: 1 << 16})
	go func() {
		for line := range sub.C {
			var e ev
			if err := json.Unmarshal(line, &e); err != nil {
				t.Errorf("exported line is not JSON: %v: %s", err, line)
				continue
			}
			h.mu.Lock()
			h.events = append(h.events, e)
			h.lines = append(h.lines, line)
			h.cond.Broadcast()
			h.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		sub.Cancel()
		select {
		case err := <-h.done:
			if err != nil {
				t.Errorf("agent: %v", err)
			}
		case <-time.After(timeout()):
			t.Error("agent did not stop")
		}
	})
	return h
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// waitFor returns the first event for which match is true, waiting until
// the timeout.
func (h *harness) waitFor(what string, match func(ev) bool) ev {
	h.t.Helper()
	e, ok := h.find(timeout(), match)
	if !ok {
		h.t.Fatalf("no %s within %v; %d events seen", what, timeout(), h.count())
	}
	return e
}

// find waits up to d for an event matching match.
func (h *harness) find(d time.Duration, match func(ev) bool) (ev, bool) {
	deadline := time.Now().Add(d)
	timer := time.AfterFunc(d, func() {
		h.mu.Lock()
		h.cond.Broadcast()
		h.mu.Unlock()
	})
	defer timer.Stop()
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := 0
	for {
		for ; seen < len(h.events); seen++ {
			if match(h.events[seen]) {
				return h.events[seen], true
			}
		}
		if time.Now().After(deadline) {
			return nil, false
		}
		h.cond.Wait()
	}
}

// all returns the events seen so far that match.
func (h *harness) all(match func(ev) bool) []ev {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []ev
	for _, e := range h.events {
		if match(e) {
			out = append(out, e)
		}
	}
	return out
}

func (h *harness) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.events)
}

// execOf matches the process_exec event of pid.
func execOf(pid int) func(ev) bool {
	return func(e ev) bool {
		return e.get("process_exec") != nil && int(e.num("process_exec.process.pid")) == pid
	}
}

// exitOf matches the process_exit event of pid.
func exitOf(pid int) func(ev) bool {
	return func(e ev) bool {
		return e.get("process_exit") != nil && int(e.num("process_exit.process.pid")) == pid
	}
}

// resolved is a path with its symlinks resolved, as the kernel reports
// executables (on the VMs /bin/echo is busybox).
func resolved(t *testing.T, path string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(path)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func fatalIf(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var _ = fmt.Sprintf
var _ = os.Getpid
