package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vigilsec/vigil/bench/bpfstats"
)

// AgentConfig is one configuration of the agent under test.
type AgentConfig struct {
	// Name is the configuration's short name in the table.
	Name string
	// Description says what it loads.
	Description string
	// Args are the configuration's own flags; Agent adds the plumbing
	// (metrics address, socket, export file).
	Args []string
	// Setup writes the files Args refer to into dir before the agent
	// starts (nil: none). It returns the flags to add.
	Setup func(dir string) ([]string, error)
}

// Agent is one running `vigil agent`.
type Agent struct {
	cmd     *exec.Cmd
	Pid     int
	Metrics string // host:port of /metrics
	Dir     string
	Args    []string
	done    chan error

	// scrapeCPU is the agent CPU time the harness's own metric reads
	// have cost so far; samples leave it out.
	scrapeCPU float64

	mu     sync.Mutex
	log    []string // stderr lines
	loaded []string // policies the agent reported loaded
	failed []string // policies it could not load
}

// freePort returns a loopback TCP port nobody listens on now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// StartAgent runs bin with cfg in a fresh directory under parent and waits
// for "agent ready" on its stderr (or its exit, or timeout).
func StartAgent(ctx context.Context, bin string, cfg AgentConfig, parent string, timeout time.Duration) (*Agent, error) {
	dir, err := os.MkdirTemp(parent, "agent-"+cfg.Name+"-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	a := &Agent{Metrics: fmt.Sprintf("127.0.0.1:%d", port), Dir: dir, done: make(chan error, 1)}
	args := []string{"agent",
		"--node-name", "vigil-bench",
		"--metrics-addr", a.Metrics,
		"--socket", filepath.Join(dir, "vigil.sock"),
		"--export-stdout=false",
		"--export-file", filepath.Join(dir, "events.json"),
	}
	args = append(args, cfg.Args...)
	if cfg.Setup != nil {
		more, err := cfg.Setup(dir)
		if err != nil {
			return nil, fmt.Errorf("configuration %s: %w", cfg.Name, err)
		}
		args = append(args, more...)
	}
	a.Args = append([]string{bin}, args...)
	a.cmd = exec.Command(bin, args...)
	a.cmd.Stdout = io.Discard
	stderr, err := a.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	// The agent stops when the harness dies (the harness never locks OS
	// threads, so the thread that started it lives as long as the harness).
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := a.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	a.Pid = a.cmd.Process.Pid
	ready := make(chan struct{})
	go a.readLog(stderr, ready)
	go func() { a.done <- a.cmd.Wait() }()
	select {
	case <-ready:
		return a, nil
	case err := <-a.done:
		a.done <- err
		return nil, fmt.Errorf("agent exited before it was ready (%v); its log:\n%s", err, a.Log(30))
	case <-time.After(timeout):
		a.Stop()
		return nil, fmt.Errorf("agent not ready after %v; its log:\n%s", timeout, a.Log(30))
	case <-ctx.Done():
		a.Stop()
		return nil, ctx.Err()
	}
}

func (a *Agent) readLog(r io.Reader, ready chan struct{}) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	once := sync.Once{}
	for sc.Scan() {
		line := sc.Text()
		a.mu.Lock()
		if len(a.log) < 10000 {
			a.log = append(a.log, line)
		}
		if strings.Contains(line, `msg="policy loaded"`) {
			a.loaded = append(a.loaded, logField(line, "policy"))
		} else if strings.Contains(line, `msg="policy failed to load"`) || strings.Contains(line, `msg="default policy not available on this kernel"`) {
			a.failed = append(a.failed, logField(line, "policy"))
		}
		a.mu.Unlock()
		if strings.Contains(line, `msg="agent ready"`) {
			once.Do(func() { close(ready) })
		}
	}
}

// logField returns the value of key=value in a logrus text line.
func logField(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return ""
	}
	v := line[i+len(key)+2:]
	if strings.HasPrefix(v, `"`) {
		if s, err := strconv.QuotedPrefix(v); err == nil {
			u, _ := strconv.Unquote(s)
			return u
		}
	}
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return v
}

// Log returns the last n lines the agent logged.
func (a *Agent) Log(n int) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	l := a.log
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// Policies returns the policies the agent loaded and those it could not.
func (a *Agent) Policies() (loaded, failed []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.loaded...), append([]string(nil), a.failed...)
}

// Warnings returns the agent's warning and error lines.
func (a *Agent) Warnings() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, l := range a.log {
		if strings.Contains(l, "level=warning") || strings.Contains(l, "level=error") || strings.Contains(l, "level=fatal") {
			out = append(out, l)
		}
	}
	return out
}

// Alive reports whether the agent still runs.
func (a *Agent) Alive() bool {
	select {
	case err := <-a.done:
		a.done <- err
		return false
	default:
		return true
	}
}

// Stop asks the agent to stop (SIGTERM), waits up to 20 s, then kills it.
// It removes the agent's directory.
func (a *Agent) Stop() error {
	defer os.RemoveAll(a.Dir)
	if !a.Alive() {
		return nil
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-a.done:
		a.done <- err
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			return err
		}
		return nil
	case <-time.After(20 * time.Second):
		a.cmd.Process.Kill()
		err := <-a.done
		a.done <- err
		return fmt.Errorf("agent did not stop within 20 s after SIGTERM; killed")
	}
}

// Sample is the agent's counters at one moment.
type Sample struct {
	At     time.Time
	Events EventCounts
	Usage  ProcUsage
	BPF    bpfstats.Snapshot // nil unless asked for
}

// Sample reads the agent's metrics and /proc (and its programs' BPF
// statistics when bpf is set). Its CPU time leaves out what serving the
// harness's metric reads cost the agent (measured around each read), so
// that waiting for an agent to settle does not count as the workload's.
func (a *Agent) Sample(ctx context.Context, bpf bool) (Sample, error) {
	s := Sample{At: time.Now()}
	u0, err := readProcUsage("/proc", a.Pid)
	if err != nil {
		return s, err
	}
	m, err := scrape(ctx, a.Metrics)
	if err != nil {
		return s, err
	}
	s.Events = eventCounts(m)
	if s.Usage, err = readProcUsage("/proc", a.Pid); err != nil {
		return s, err
	}
	a.scrapeCPU += s.Usage.CPUSeconds - u0.CPUSeconds
	s.Usage.CPUSeconds -= a.scrapeCPU
	if bpf {
		if s.BPF, err = bpfstats.Of("/proc", a.Pid); err != nil {
			return s, err
		}
	}
	return s, nil
}

// Settle waits until the agent has caught up with what a workload produced:
// every produced event delivered and the counts unchanged for 200 ms, and
// at least minWait after the workload (the agent reads the kernel's loss
// counters every second). It gives up after 15 s and returns the last
// sample.
func (a *Agent) Settle(ctx context.Context, minWait time.Duration, bpf bool) (Sample, error) {
	start := time.Now()
	var last Sample
	stable := 0
	for {
		s, err := a.Sample(ctx, bpf)
		if err != nil {
			return s, err
		}
		same := s.Events.Produced == last.Events.Produced && s.Events.Delivered == last.Events.Delivered
		caughtUp := s.Events.Delivered+s.Events.Lost["queue_full"]+s.Events.Lost["sink_error"] >= s.Events.Produced
		if same && caughtUp {
			stable++
		} else {
			stable = 0
		}
		last = s
		if (stable >= 2 && time.Since(start) >= minWait) || time.Since(start) > 15*time.Second {
			return last, nil
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
