package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigilsec/vigil/bench/workload"
)

// NetpolResult is the network policy part: connect latency through the
// datapath with a small and a large policy set, and how soon a new pod's
// policy is in force.
type NetpolResult struct {
	SmallRules, LargeRules, Identities int
	Connects                           int
	Command                            string
	AgentArgs                          []string
	// Median connect latency (ns) per round, by phase: none, small, large.
	Median map[string][]float64
	// NewPod latencies (ms) by scenario and set.
	NewPod     map[string][]float64
	NewPodErrs []string
}

const (
	setSmall = "10 rules"
	setLarge = "large"
)

func (h *Harness) serverAddr(port int) string { return fmt.Sprintf("%s:%d", serverIP, port) }

// clientWork runs `vigil-bench work ...` in the client's cgroup and network
// namespace (or in cgroup cg when given).
func (h *Harness) clientWork(ctx context.Context, cg *os.File, args ...string) (workload.Result, error) {
	if cg == nil {
		cg = h.clientCg
	}
	out, err := Child{Argv: append([]string{h.opts.Self, "work"}, args...), Cgroup: cg, Netns: h.netns.Client}.Run(ctx)
	if err != nil {
		return workload.Result{}, err
	}
	return workload.Parse(out)
}

func (h *Harness) waitVerdict(ctx context.Context, cg *os.File, port int, denied bool, timeout time.Duration) (workload.Result, error) {
	return h.clientWork(ctx, cg, "verdict", "-addr", h.serverAddr(port), "-denied="+strconv.FormatBool(denied),
		"-interval", "1ms", "-timeout", timeout.String())
}

func (h *Harness) latency(ctx context.Context) (float64, error) {
	r, err := h.clientWork(ctx, nil, "connect", "-addr", h.serverAddr(portAllowed), "-warmup", "200", "-n", strconv.Itoa(h.opts.Connects), "-latencies")
	if err != nil {
		return 0, err
	}
	return medianInt(r.Latencies), nil
}

// writePolicies replaces the policy file of a running agent (the agent
// watches the directory); rename makes the change atomic.
func writeAtomic(path string, data []byte) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (h *Harness) runNetpol(ctx context.Context, lock *Lock) error {
	o := h.opts
	var err error
	if h.netns, err = MakeNetns("vigilbench"); err != nil {
		return err
	}
	listen := []string{h.serverAddr(portAllowed), h.serverAddr(portDenied), h.serverAddr(portMarker)}
	h.server, err = Child{Argv: []string{o.Self, "work", "serve", "-listen", strings.Join(listen, ",")},
		Cgroup: h.serverCg, Netns: h.netns.Server}.Start(ctx)
	if err != nil {
		return err
	}
	// A loaded machine may take seconds to start the server.
	if _, err := h.waitVerdict(ctx, nil, portAllowed, false, 30*time.Second); err != nil {
		state := "still running"
		if h.server.Process.Signal(syscall.Signal(0)) != nil {
			state = "exited"
		}
		return fmt.Errorf("server in namespace %s (%s, pid %d): %w", h.netns.Server, state, h.server.Process.Pid, err)
	}
	res := &NetpolResult{SmallRules: 10, LargeRules: o.Rules, Identities: o.Identities, Connects: o.Connects,
		Median: map[string][]float64{}, NewPod: map[string][]float64{}}
	res.Command = strings.Join([]string{"ip netns exec", h.netns.Client, o.Self, "work connect -addr", h.serverAddr(portAllowed),
		"-warmup 200 -n", strconv.Itoa(o.Connects), "-latencies"}, " ")
	h.rep.Netpol = res

	small, err := Policies(o.Identities, 10, false)
	if err != nil {
		return err
	}
	large, err := Policies(o.Identities, o.Rules, true)
	if err != nil {
		return err
	}
	for r := 0; r < o.Rounds; r++ {
		if err := lock.Held(); err != nil {
			return err
		}
		h.progress("network policy round %d/%d", r+1, o.Rounds)
		// Alternate which phase comes first, and which set the agent
		// starts with.
		noneFirst := r%2 == 0
		if noneFirst {
			if err := h.latencyNone(ctx, res); err != nil {
				return err
			}
		}
		first, second := small, large
		fname, sname := setSmall, setLarge
		if r%2 == 1 {
			first, second, fname, sname = large, small, setLarge, setSmall
		}
		a, err := h.startNetpolAgent(ctx, first == large)
		if err != nil {
			return err
		}
		if res.AgentArgs == nil {
			res.AgentArgs = a.Args
		}
		for i, set := range []struct {
			name string
			doc  string
		}{{fname, first}, {sname, second}} {
			if i == 1 {
				if err := writeAtomic(filepath.Join(a.Dir, "netpol", "policies.yaml"), []byte(set.doc)); err != nil {
					a.Stop()
					return err
				}
			}
			// The marker port tells which set is in force.
			if _, err := h.waitVerdict(ctx, nil, portMarker, set.name == setSmall, 60*time.Second); err != nil {
				a.Stop()
				return fmt.Errorf("policy set %q not in force: %w; agent log:\n%s", set.name, err, a.Log(20))
			}
			med, err := h.latency(ctx)
			if err != nil {
				a.Stop()
				return err
			}
			res.Median[set.name] = append(res.Median[set.name], med)
			h.progress("  connect latency, %s: median %.1f µs", set.name, med/1e3)
		}
		a.Stop()
		if !noneFirst {
			if err := h.latencyNone(ctx, res); err != nil {
				return err
			}
		}
	}
	for _, large := range []bool{false, true} {
		if err := h.newPodTrials(ctx, res, large); err != nil {
			return err
		}
	}
	return nil
}

func (h *Harness) latencyNone(ctx context.Context, res *NetpolResult) error {
	med, err := h.latency(ctx)
	if err != nil {
		return err
	}
	res.Median["none"] = append(res.Median["none"], med)
	h.progress("  connect latency, no agent: median %.1f µs", med/1e3)
	return nil
}

func (h *Harness) startNetpolAgent(ctx context.Context, large bool) (*Agent, error) {
	rules := 10
	if large {
		rules = h.opts.Rules
	}
	cfg := AgentConfig{Name: "netpol-latency", Setup: h.netpolSetup(rules, large)}
	return StartAgent(ctx, h.opts.Vigil, cfg, h.dir, 180*time.Second)
}

// newPodTrials measures, with the small or the large set in force, the time
// from a new pod appearing to the first connect of its process that gets
// the policy's verdict (EPERM on a port no rule allows), in two orders:
// "entry": the process runs in its cgroup and the Workload entry is
// written (the time starts at the write); "cgroup": the entry exists and
// the cgroup is created and the process started in it (the time starts at
// the mkdir).
func (h *Harness) newPodTrials(ctx context.Context, res *NetpolResult, large bool) error {
	set := setSmall
	if large {
		set = setLarge
	}
	a, err := h.startNetpolAgent(ctx, large)
	if err != nil {
		return err
	}
	defer a.Stop()
	h.progress("new pod trials, %s", set)
	wdir := filepath.Join(a.Dir, "workloads")
	for k := 0; k < h.opts.NewPodTrials; k++ {
		for _, scenario := range []string{"entry", "cgroup"} {
			ms, err := h.newPodTrial(ctx, wdir, fmt.Sprintf("newpod-%s-%d", scenario, k), scenario == "entry")
			key := scenario + "/" + set
			if err != nil {
				res.NewPodErrs = append(res.NewPodErrs, fmt.Sprintf("%s, trial %d: %v", key, k+1, err))
				h.progress("  %s: %v", key, err)
				continue
			}
			res.NewPod[key] = append(res.NewPod[key], ms)
			h.progress("  %s: %.1f ms", key, ms)
		}
	}
	return nil
}

func (h *Harness) newPodTrial(ctx context.Context, wdir, name string, entryLast bool) (float64, error) {
	file := filepath.Join(wdir, name+".yaml")
	doc := WorkloadDoc(name, map[string]string{"role": "client"}, h.cg.Path(name))
	defer func() {
		os.Remove(file)
		os.Remove(h.cg.Dir(name))
	}()
	type outcome struct {
		r   workload.Result
		err error
	}
	done := make(chan outcome, 1)
	start := func(cg *os.File) {
		go func() {
			r, err := h.waitVerdict(ctx, cg, portDenied, true, 10*time.Second)
			done <- outcome{r, err}
		}()
	}
	var t0 time.Time
	if entryLast {
		cg, err := h.cg.Make(name)
		if err != nil {
			return 0, err
		}
		defer cg.Close()
		start(cg)
		// Let the process start and see its connects allowed (no policy
		// selects a cgroup that is no pod).
		time.Sleep(300 * time.Millisecond)
		t0 = time.Now()
		if err := writeAtomic(file, []byte(doc)); err != nil {
			return 0, err
		}
	} else {
		if err := writeAtomic(file, []byte(doc)); err != nil {
			return 0, err
		}
		time.Sleep(time.Second)
		t0 = time.Now()
		cg, err := h.cg.Make(name)
		if err != nil {
			return 0, err
		}
		defer cg.Close()
		start(cg)
	}
	out := <-done
	if out.err != nil {
		return 0, out.err
	}
	if entryLast && out.r.Ops < 2 {
		return 0, fmt.Errorf("the first connect was already denied: the measurement started too late")
	}
	return float64(out.r.At-t0.UnixNano()) / 1e6, nil
}
