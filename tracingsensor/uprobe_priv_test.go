//go:build amd64

package tracingsensor

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf/btf"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/internal/kerneltest"
	"github.com/vigilsec/vigil/internal/uprobetarget"
	"github.com/vigilsec/vigil/tracingpolicies"
)

// envUprobeCall makes the test binary a child that calls
// uprobetarget.Target with the arguments "A,B,STRING", and exits.
const envUprobeCall = "VIGIL_TEST_UPROBE_CALL"

func init() {
	v := os.Getenv(envUprobeCall)
	if v == "" {
		return
	}
	parts := strings.SplitN(v, ",", 3)
	a, _ := strconv.ParseUint(parts[0], 10, 64)
	b, _ := strconv.ParseUint(parts[1], 10, 64)
	if uprobetarget.Call(a, b, parts[2]) != a+b {
		os.Exit(2)
	}
	os.Exit(0)
}

// uprobeEvent is what the test checks of a process_uprobe event.
type uprobeEvent struct {
	typ    event.Type
	pid    uint32
	path   string
	symbol string
	action string
	args   []event.Arg
}

type uprobeSink struct {
	mu     sync.Mutex
	events []uprobeEvent
}

func (s *uprobeSink) Export(ev *event.Event) {
	if ev.Kprobe == nil {
		return
	}
	e := uprobeEvent{typ: ev.Type, path: ev.Kprobe.UprobePath, symbol: ev.Kprobe.FunctionName, action: ev.Kprobe.Action,
		args: append([]event.Arg(nil), ev.Kprobe.Args...)}
	if ev.Process != nil {
		e.pid = ev.Process.PID
	}
	s.mu.Lock()
	s.events = append(s.events, e)
	s.mu.Unlock()
}

// wait returns the event of process pid, failing t after a generous
// deadline (the event is awaited, not timed).
func (s *uprobeSink) wait(t *testing.T, pid int) uprobeEvent {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		s.mu.Lock()
		for _, e := range s.events {
			if e.pid == uint32(pid) {
				s.mu.Unlock()
				return e
			}
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t.Fatalf("no event of pid %d; events: %+v", pid, s.events)
	return uprobeEvent{}
}

// runUprobeChild runs the test binary calling Target(a, b, str) and returns
// its pid and how it ended.
func runUprobeChild(t *testing.T, exe string, a, b uint64, str string) (int, error) {
	t.Helper()
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d,%d,%s", envUprobeCall, a, b, str))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid, cmd.Wait()
}

// A uprobe policy on a function of the test binary reports its calls as
// process_uprobe events with the arguments read from the C calling
// convention's registers, and its Sigkill selector kills the caller before
// the function runs.
func TestPrivUprobe(t *testing.T) {
	f := kerneltest.Features(t)
	if _, err := os.Stat(uprobePMU); err != nil {
		kerneltest.Skip(t, "this kernel has no uprobes: %v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ps, cache, log := sensorDeps(t, f)
	sink := &uprobeSink{}
	s, err := New(Config{Tracefs: f.Kernel.Tracefs, ProcRoot: "/proc"}, ps, f, cache, sink, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	stop, err := newTestReader(t, ps, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)

	doc := fmt.Sprintf(`apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: uprobe-target
spec:
  uprobes:
  - path: %s
    symbols: [%q]
    args:
    - {index: 0, type: uint64}
    - {index: 1, type: int}
    - {index: 2, type: string}
    selectors:
    - matchArgs:
      - {index: 1, operator: Equal, values: ["9"]}
      matchActions:
      - {action: Sigkill}
    - matchArgs:
      - {index: 2, operator: Prefix, values: ["vigil-"]}
      matchBinaries:
      - {operator: In, values: [%q]}
`, exe, uprobetarget.Symbol, exe)
	ps2, err := tracingpolicies.Parse("uprobe.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	kernel, err := btf.LoadKernelSpec()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tracingpolicies.Validate(ps2[0], kernel, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ps2[0], "uprobe.yaml"); err != nil {
		t.Fatal(err)
	}

	// Reported: the arguments are the call's.
	pid, err := runUprobeChild(t, exe, 1<<40, 7, "vigil-uprobe")
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	e := sink.wait(t, pid)
	if e.typ != event.TypeProcessUprobe || e.path != exe || e.symbol != uprobetarget.Symbol || e.action != "KPROBE_ACTION_POST" {
		t.Errorf("event %+v, want a process_uprobe of %s:%s with KPROBE_ACTION_POST", e, exe, uprobetarget.Symbol)
	}
	if len(e.args) != 3 || e.args[0].Uint != 1<<40 || e.args[1].Int != 7 || e.args[2].Str != "vigil-uprobe" {
		t.Errorf("args %+v, want 1<<40, 7, vigil-uprobe", e.args)
	}

	// Filtered out by every selector: no event.
	quiet, err := runUprobeChild(t, exe, 1, 2, "other")
	if err != nil {
		t.Fatalf("child: %v", err)
	}

	// Killed: the child never returns from the call.
	pid, err = runUprobeChild(t, exe, 1, 9, "other")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child calling Target(1, 9): %v, want killed by SIGKILL", err)
	}
	if e := sink.wait(t, pid); e.action != "KPROBE_ACTION_SIGKILL" {
		t.Errorf("event of the killed child: %+v, want KPROBE_ACTION_SIGKILL", e)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, e := range sink.events {
		if e.pid == uint32(quiet) {
			t.Errorf("an event for a call no selector matches: %+v", e)
		}
	}
}
