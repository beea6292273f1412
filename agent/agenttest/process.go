package agenttest

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/agent"
	"github.com/vigilsec/vigil/exporter"
)

// AgentProcess is an agent running in a process of its own (the test
// binary as a helper), so that a test can kill it.
type AgentProcess struct {
	T *testing.T
	// Events is the file the agent exports to.
	Events string
	cmd    *exec.Cmd
	done   chan error
}

// ProcessOptions configure StartAgentProcess.
type ProcessOptions struct {
	Policies []string
	Keep     bool
	PinDir   string
	// NetworkPolicies and Workloads are --network-policy and
	// --workloads files (the pods' cgroups and labels).
	NetworkPolicies, Workloads []string
}

// StartAgentProcess runs an agent in a child process with the test
// configuration and waits until it is ready. The test's cleanup stops it
// (SIGTERM) if it still runs.
func StartAgentProcess(t *testing.T, o ProcessOptions) *AgentProcess {
	t.Helper()
	self, err := os.Executable()
	FatalIf(t, err)
	p := &AgentProcess{T: t, Events: filepath.Join(t.TempDir(), "events.json"), done: make(chan error, 1)}
	args := []string{"-events", p.Events, "-socket", filepath.Join(t.TempDir(), "vigil.sock"), "-pin-dir", o.PinDir, fmt.Sprintf("-keep=%v", o.Keep)}
	for _, pol := range o.Policies {
		args = append(args, "-policy", pol)
	}
	for _, pol := range o.NetworkPolicies {
		args = append(args, "-netpol", pol)
	}
	for _, wl := range o.Workloads {
		args = append(args, "-workloads", wl)
	}
	p.cmd = exec.Command(self, args...)
	p.cmd.Env = append(os.Environ(), "VIGIL_TEST_HELPER=agent")
	p.cmd.Stderr = testWriter{t}
	out, err := p.cmd.StdoutPipe()
	FatalIf(t, err)
	FatalIf(t, p.cmd.Start())
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "ready" {
				close(ready)
			}
		}
		p.done <- p.cmd.Wait()
	}()
	t.Cleanup(func() { p.Stop() })
	select {
	case <-ready:
	case err := <-p.done:
		p.done <- err
		t.Fatalf("agent process stopped before it was ready: %v", err)
	case <-time.After(5 * Timeout()):
		t.Fatalf("agent process not ready after %v", 5*Timeout())
	}
	return p
}

// Kill ends the agent with SIGKILL: it cleans nothing up.
func (p *AgentProcess) Kill() {
	p.T.Helper()
	if p.cmd.ProcessState != nil {
		return
	}
	FatalIf(p.T, p.cmd.Process.Signal(syscall.SIGKILL))
	<-p.done
	p.done <- nil
}

// Stop ends the agent with SIGTERM, as systemd or the kubelet do, and
// waits for it to exit.
func (p *AgentProcess) Stop() {
	p.T.Helper()
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-p.done; err != nil {
		p.T.Errorf("agent process: %v", err)
	}
	p.done <- nil
}

// ReadEvents returns the events the agent exported so far that match.
func (p *AgentProcess) ReadEvents(match func(Event) bool) []Event {
	p.T.Helper()
	data, err := os.ReadFile(p.Events)
	FatalIf(p.T, err)
	var out []Event
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" {
			continue
		}
		var e Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			continue // a line being written
		}
		if match(e) {
			out = append(out, e)
		}
	}
	return out
}

// WaitEvent waits until the agent exported an event that matches.
func (p *AgentProcess) WaitEvent(what string, match func(Event) bool) Event {
	p.T.Helper()
	for deadline := time.Now().Add(Timeout()); ; time.Sleep(20 * time.Millisecond) {
		if evs := p.ReadEvents(match); len(evs) > 0 {
			return evs[0]
		}
		if time.Now().After(deadline) {
			p.T.Fatalf("agent process: no %s within %v", what, Timeout())
		}
	}
}

// agentHelper is the child side of StartAgentProcess: an agent with the
// test configuration that prints "ready" when it is, and stops on SIGTERM.
func agentHelper(args []string) int {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	events := fs.String("events", "", "")
	socket := fs.String("socket", "", "")
	pinDir := fs.String("pin-dir", "", "")
	keep := fs.Bool("keep", false, "")
	var policies, netpols, workloads stringList
	fs.Var(&policies, "policy", "")
	fs.Var(&netpols, "netpol", "")
	fs.Var(&workloads, "workloads", "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg := agent.DefaultConfig()
	cfg.NodeName = "test-node"
	cfg.MetricsAddr = ""
	cfg.UI.Addr, cfg.UI.HubbleAddr = "", ""
	cfg.SocketPath = *socket
	cfg.NoDefaultPolicies = true
	cfg.Rules.NoDefaultRules = true
	cfg.Export = exporter.DefaultConfig()
	cfg.Export.Stdout = false
	cfg.Export.File = *events
	cfg.Policies = policies
	cfg.NetworkPolicies = netpols
	if len(workloads) > 0 {
		cfg.Identity.WorkloadFiles = workloads
		cfg.Identity.CRIEndpoints = []string{"none"}
		cfg.Identity.Kubernetes = "off"
	}
	cfg.KeepEnforcementOnExit = *keep
	if *pinDir != "" {
		cfg.BPFPinDir = *pinDir
	}
	log := logrus.New()
	log.SetOutput(os.Stderr)
	a, err := agent.New(cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	go func() {
		for !a.Ready() && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		if ctx.Err() == nil {
			fmt.Println("ready")
		}
	}()
	if err := a.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }
