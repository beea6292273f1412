package tracingsensor

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
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
	"github.com/vigilsec/vigil/kprobes"
	"github.com/vigilsec/vigil/tracingpolicies"
)

// uprobeEvent is what the test checks of a process_uprobe event.
type uprobeEvent struct {
	typ    event.Type
	pid    uint32
	path   string
	symbol string
	action string
	offset uint64
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
	e := uprobeEvent{typ: ev.Type, path: ev.Kprobe.UprobePath, symbol: ev.Kprobe.FunctionName, action: ev.Kprobe.Action, offset: ev.Kprobe.UprobeOffset,
		args: append([]event.Arg(nil), ev.Kprobe.Args...)}
	if ev.Process != nil {
		e.pid = ev.Process.PID
	}
	s.mu.Lock()
	s.events = append(s.events, e)
	s.mu.Unlock()
}

// wait returns the event of process pid that ok accepts, failing t after
// a generous deadline (the event is awaited, not timed).
func (s *uprobeSink) wait(t *testing.T, pid int, ok func(uprobeEvent) bool) uprobeEvent {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		s.mu.Lock()
		for _, e := range s.events {
			if e.pid == uint32(pid) && ok(e) {
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

// runTarget runs the target calling its function with (a, b, str), a and
// b digits, and returns its pid and how it ended: a status of a+b when the
// function ran.
func runTarget(t *testing.T, exe string, a, b int, str string) (int, error) {
	t.Helper()
	cmd := exec.Command(exe, strconv.Itoa(a), strconv.Itoa(b), str)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == a+b {
		err = nil
	}
	return cmd.Process.Pid, err
}

func isSymbolEvent(e uprobeEvent) bool { return e.symbol != "" }

// newUprobeRig writes the target executable as name in a temporary folder
// and starts a sensor whose events go to the returned sink.
func newUprobeRig(t *testing.T, name string) (string, *Sensor, *uprobeSink) {
	t.Helper()
	kerneltest.SkipIfNotSupported(t, kprobes.FeatureUprobe)
	f := kerneltest.Features(t)
	exe := filepath.Join(t.TempDir(), name)
	if err := uprobetarget.Write(exe); err != nil {
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
	return exe, s, sink
}

// A uprobe policy on a function of an executable reports its calls as
// process_uprobe events with the arguments read from the C calling
// convention's registers, by symbol and by file offset, and its Sigkill
// selector kills the caller before the function runs.
func TestPrivUprobe(t *testing.T) {
	exe, s, sink := newUprobeRig(t, "uprobe-target")

	for _, mech := range []kprobes.Mechanism{mechUprobeMulti, mechUprobe} {
		t.Run(string(mech), func(t *testing.T) {
			if mech == mechUprobeMulti {
				kerneltest.SkipIfNotSupported(t, kprobes.FeatureUprobeMulti)
			}
			testUprobe(t, s, sink, exe, mech)
		})
	}
}

func testUprobe(t *testing.T, s *Sensor, sink *uprobeSink, exe string, mech kprobes.Mechanism) {
	doc := fmt.Sprintf(`apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: uprobe-target-%[4]s
spec:
  uprobes:
  - path: %[1]s
    symbols: [%[2]s]
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
      - {operator: In, values: [%[1]q]}
  - path: %[1]s
    offsets: [%[3]d]
    args:
    - {index: 2, type: string}
    selectors:
    - matchArgs:
      - {index: 2, operator: Equal, values: ["vigil-offset"]}
`, exe, uprobetarget.Symbol, uprobetarget.Offset, strings.ReplaceAll(string(mech), ".", "-"))
	policies, err := tracingpolicies.Parse("uprobe.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	kernel, err := btf.LoadKernelSpec()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tracingpolicies.Validate(policies[0], kernel, nil); err != nil {
		t.Fatal(err)
	}
	for _, h := range policies[0].Hooks {
		h.Mechanism = mech
	}
	p, err := s.Load(policies[0], "uprobe.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Unload(p.Key())
	for _, h := range p.Hooks() {
		if h.Mechanism != mech {
			t.Errorf("hook %s attached with %s, want %s", h.Target, h.Mechanism, mech)
		}
	}

	// Reported: the arguments are the call's.
	pid, err := runTarget(t, exe, 3, 7, "vigil-uprobe")
	if err != nil {
		t.Fatalf("target: %v", err)
	}
	e := sink.wait(t, pid, isSymbolEvent)
	if e.typ != event.TypeProcessUprobe || e.path != exe || e.symbol != uprobetarget.Symbol || e.action != "KPROBE_ACTION_POST" {
		t.Errorf("event %+v, want a process_uprobe of %s:%s with KPROBE_ACTION_POST", e, exe, uprobetarget.Symbol)
	}
	if len(e.args) != 3 || e.args[0].Uint != 3 || e.args[1].Int != 7 || e.args[2].Str != "vigil-uprobe" {
		t.Errorf("args %+v, want 3, 7, vigil-uprobe", e.args)
	}

	// The probe at a file offset.
	pid, err = runTarget(t, exe, 1, 2, "vigil-offset")
	if err != nil {
		t.Fatalf("target: %v", err)
	}
	e = sink.wait(t, pid, func(e uprobeEvent) bool { return e.symbol == "" })
	if e.offset != uprobetarget.Offset || e.path != exe || len(e.args) != 1 || e.args[0].Str != "vigil-offset" {
		t.Errorf("event %+v, want offset %#x and the string vigil-offset", e, uprobetarget.Offset)
	}

	// Filtered out by every selector: no event.
	quiet, err := runTarget(t, exe, 1, 2, "other")
	if err != nil {
		t.Fatalf("target: %v", err)
	}

	// Killed: the target never returns from the call.
	pid, err = runTarget(t, exe, 1, 9, "other")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("target calling %s(1, 9): %v, want killed by SIGKILL", uprobetarget.Symbol, err)
	}
	if e := sink.wait(t, pid, isSymbolEvent); e.action != "KPROBE_ACTION_SIGKILL" {
		t.Errorf("event of the killed target: %+v, want KPROBE_ACTION_SIGKILL", e)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, e := range sink.events {
		if e.pid == uint32(quiet) {
			t.Errorf("an event for a call no selector matches: %+v", e)
		}
	}
}

// A USDT policy on the target's probe reports the arguments from where the
// probe's note says they are: registers, the stack and a constant.
func TestPrivUprobeUSDT(t *testing.T) {
	exe, s, sink := newUprobeRig(t, "usdt-target")
	doc := fmt.Sprintf(`apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: usdt-target
spec:
  usdts:
  - path: %s
    provider: %s
    name: %s
    args:
    - {index: 0, type: int}
    - {index: 1, type: uint64}
    - {index: 2, type: string}
    - {index: 3, type: uint64}
    - {index: 4, type: int16}
    selectors:
    - matchArgs:
      - {index: 2, operator: Equal, values: ["kill-me"]}
      matchActions:
      - {action: Sigkill}
    - matchArgs:
      - {index: 2, operator: Prefix, values: ["vigil-"]}
`, exe, uprobetarget.USDTProvider, uprobetarget.USDTName)
	policies, err := tracingpolicies.Parse("usdt.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tracingpolicies.Validate(policies[0], nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(policies[0], "usdt.yaml"); err != nil {
		t.Fatal(err)
	}
	pid, err := runTarget(t, exe, 5, 6, "vigil-usdt")
	if err != nil {
		t.Fatalf("target: %v", err)
	}
	e := sink.wait(t, pid, func(uprobeEvent) bool { return true })
	// argc is 4: the target and its three arguments.
	if e.typ != event.TypeProcessUsdt || e.path != exe || e.symbol != uprobetarget.USDTName || len(e.args) != 5 ||
		e.args[0].Int != 5 || e.args[1].Uint != 6 || e.args[2].Str != "vigil-usdt" || e.args[3].Uint != 4 || e.args[4].Int != -3 {
		t.Errorf("event %+v, want a process_usdt of %s with args 5, 6, vigil-usdt, 4, -3", e, exe)
	}
	pid, err = runTarget(t, exe, 1, 2, "kill-me")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("target at the USDT probe with kill-me: %v, want killed by SIGKILL", err)
	}
	if e := sink.wait(t, pid, func(uprobeEvent) bool { return true }); e.action != "KPROBE_ACTION_SIGKILL" {
		t.Errorf("event of the killed target: %+v, want KPROBE_ACTION_SIGKILL", e)
	}
}
