package tracingsensor

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/bench/bpfstats"
	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/internal/kerneltest"
	"github.com/vigilsec/vigil/kprobes/abi"
	"github.com/vigilsec/vigil/observer"
	"github.com/vigilsec/vigil/process"
	"github.com/vigilsec/vigil/tracingpolicies"
)

// envOpenLoop makes the test binary a child that opens and closes a file N
// times and exits: "N PATH". The policies never act on the calls of the
// process that loaded them (the agent's own), so the calls come from a
// child, as they would from any workload.
const envOpenLoop = "VIGIL_BENCH_OPEN_LOOP"

func init() {
	spec := os.Getenv(envOpenLoop)
	if spec == "" {
		return
	}
	n, path, _ := strings.Cut(spec, " ")
	count, err := strconv.Atoi(n)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s=%q: %v\n", envOpenLoop, spec, err)
		os.Exit(2)
	}
	for range count {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			fmt.Fprintf(os.Stderr, "open %s: %v\n", path, err)
			os.Exit(1)
		}
		unix.Close(fd)
	}
	os.Exit(0)
}

type countingSink struct{ n atomic.Uint64 }

func (s *countingSink) Export(*event.Event) { s.n.Add(1) }

// BenchmarkPrivSyscallHook measures the BPF time of an openat hook per call
// (kernel BPF statistics: run time / run count of the policy's programs),
// for a call that matches no selector, one that matches and is reported,
// and one that matches a Sigkill or Signal selector (the enforcement
// decision). The calls are made by a child process opening a file of its
// own in a loop; bpf-ns/call is the figure to read, ns/op includes starting
// the child.
//
//	sudo VIGIL_PRIVILEGED=1 go test ./tracingsensor -run '^$' -bench PrivSyscallHook -benchtime 200000x
func BenchmarkPrivSyscallHook(b *testing.B) {
	f := kerneltest.Features(b)
	ps, cache, log := sensorDeps(b, f)
	sink := &countingSink{}
	s, err := New(Config{Tracefs: f.Kernel.Tracefs, ProcRoot: "/proc"}, ps, f, cache, sink, log)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	obs, err := observer.New(ps.Events(), ps.RingReader(), log)
	if err != nil {
		b.Fatal(err)
	}
	obs.Handle(abi.OpGeneric, s.HandleRecord)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- obs.Run(ctx) }()
	defer func() { cancel(); <-done }()

	stats, err := bpfstats.Enable()
	if err != nil {
		b.Fatal(err)
	}
	defer stats.Close()

	dir := b.TempDir()
	target := filepath.Join(dir, "data.txt")
	if err := os.WriteFile(target, []byte("benchmark\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		// selector is the selector list of an openat hook (filename is
		// argument 1).
		selector string
		mode     tracingpolicies.Mode
		matches  bool
	}{
		{"no-match", `
    - matchArgs:
      - {index: 1, operator: Prefix, values: [/etc/shadow, /etc/gshadow, /etc/sudoers, /root/.ssh/]}`, tracingpolicies.ModeEnforce, false},
		{"match-post", `
    - matchArgs:
      - {index: 1, operator: Prefix, values: [` + dir + `/]}`, tracingpolicies.ModeEnforce, true},
		{"match-sigkill-monitor", `
    - matchArgs:
      - {index: 1, operator: Equal, values: [` + target + `]}
      matchActions:
      - action: Sigkill
      - action: Post`, tracingpolicies.ModeMonitor, true},
		{"match-signal-enforce", `
    - matchArgs:
      - {index: 1, operator: Equal, values: [` + target + `]}
      matchActions:
      - {action: Signal, argSig: "28"}
      - action: Post`, tracingpolicies.ModeEnforce, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			doc := `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: bench-openat
spec:
  options:
  - {name: policy-mode, value: ` + string(tc.mode) + `}
  # Every matching call is an event: the figure is the cost of the
  # whole path, not of a repeat folded in the kernel.
  - {name: repeated-events, value: report-all}
  kprobes:
  - call: sys_openat
    syscall: true
    args:
    - {index: 1, type: string, label: filename}
    - {index: 2, type: int, label: flags}
    selectors:` + tc.selector + "\n"
			tps, err := tracingpolicies.Parse("bench-openat.yaml", []byte(doc))
			if err != nil {
				b.Fatal(err)
			}
			p, err := s.Load(tps[0], "bench-openat.yaml")
			if err != nil {
				b.Fatal(err)
			}
			defer s.Unload(p.Key())
			before, err := bpfstats.Of("/proc", os.Getpid(), "generic_")
			if err != nil {
				b.Fatal(err)
			}
			events := sink.n.Load()
			lost0 := lostRecords(b, ps)
			b.ResetTimer()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), envOpenLoop+"="+strconv.Itoa(b.N)+" "+target)
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("open loop: %v: %s", err, out)
			}
			b.StopTimer()
			after, err := bpfstats.Of("/proc", os.Getpid(), "generic_")
			if err != nil {
				b.Fatal(err)
			}
			t := bpfstats.Total(after.Sub(before))
			if t.Runs < uint64(b.N) {
				b.Fatalf("the policy's programs ran %d times for %d calls: is the hook attached?", t.Runs, b.N)
			}
			b.ReportMetric(float64(t.Runtime.Nanoseconds())/float64(t.Runs), "bpf-ns/call")
			b.ReportMetric(float64(t.Runs)/float64(b.N), "runs/op")
			if tc.matches {
				// Let the observer drain, then check every call was seen
				// (the figures mean nothing if the selector missed).
				for range 100 {
					if sink.n.Load()-events >= uint64(b.N) {
						break
					}
					time.Sleep(10 * time.Millisecond)
				}
				got, lost := sink.n.Load()-events, lostRecords(b, ps)-lost0
				if got+lost < uint64(b.N) {
					b.Fatalf("%d events and %d lost records for %d matching calls", got, lost, b.N)
				}
				b.ReportMetric(float64(lost)/float64(b.N), "lost/op")
			}
		})
	}
}

func lostRecords(b *testing.B, ps *process.Sensor) uint64 {
	lost, err := ps.Lost()
	if err != nil {
		b.Fatal(err)
	}
	var n uint64
	for _, l := range lost {
		n += l
	}
	return n
}
