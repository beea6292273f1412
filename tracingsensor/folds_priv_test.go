package tracingsensor

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/internal/kerneltest"
	"github.com/vigilsec/vigil/kprobes/abi"
	"github.com/vigilsec/vigil/tracingpolicies"
)

// countSink counts, per path argument, the events and the repeats they
// report.
type countSink struct {
	mu                       sync.Mutex
	events, reports, repeats map[string]uint64
}

func newCountSink() *countSink {
	return &countSink{events: map[string]uint64{}, reports: map[string]uint64{}, repeats: map[string]uint64{}}
}

func (s *countSink) Export(ev *event.Event) {
	if ev.Kprobe == nil || len(ev.Kprobe.Args) == 0 {
		return
	}
	p := ev.Kprobe.Args[0].Str
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events[p]++
	if r := ev.Kprobe.Repeats; r != nil {
		s.reports[p]++
		s.repeats[p] += r.Count
		if r.Last.Before(r.First) {
			panic(fmt.Sprintf("repeats of %s end before they begin: %v", p, r))
		}
	}
}

func (s *countSink) get(p string) (events, calls uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// An event is one call; a report of repeats stands for Count calls.
	return s.events[p], s.events[p] - s.reports[p] + s.repeats[p]
}

// Identical calls are folded in the kernel into a handful of events whose
// counts add up exactly to the calls made; report-all reports each one; the
// runs are forgotten once their process is gone.
func TestPrivFoldRepeats(t *testing.T) {
	f := kerneltest.Features(t)
	ps, cache, log := sensorDeps(t, f)
	for _, tc := range []struct {
		name, option string
		maxEvents    uint64
	}{
		{"fold", "", 12},
		{"report-all", "\n  options:\n  - {name: repeated-events, value: report-all}", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := newCountSink()
			s, err := New(Config{Tracefs: f.Kernel.Tracefs, ProcRoot: "/proc"}, ps, f, cache, sink, log)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			stop, err := newTestReader(t, ps, s)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			swept := make(chan error, 1)
			go func() { swept <- s.RunFolds(ctx, sink) }()

			dir := t.TempDir()
			doc := `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata: {name: folds}
spec:` + tc.option + `
  kprobes:
  - call: sys_openat
    syscall: true
    args:
    - {index: 1, type: string, label: filename}
    selectors:
    - matchArgs:
      - {index: 1, operator: Prefix, values: [` + dir + `/]}
`
			tps, err := tracingpolicies.Parse("folds.yaml", []byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			pol, err := s.Load(tps[0], "folds.yaml")
			if err != nil {
				t.Fatal(err)
			}
			counts := map[string]int{filepath.Join(dir, "a"): 20000, filepath.Join(dir, "b"): 3, filepath.Join(dir, "c"): 1}
			var lines []string
			for p, n := range counts {
				lines = append(lines, strconv.Itoa(n)+" "+p)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), envOpenRepeat+"="+strings.Join(lines, "\n"))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("child: %v: %s", err, out)
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				done := true
				for p, n := range counts {
					if _, calls := sink.get(p); calls < uint64(n) {
						done = false
					}
				}
				if done || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(2 * FoldInterval) // anything more would be too much
			for p, n := range counts {
				events, calls := sink.get(p)
				if calls != uint64(n) {
					t.Errorf("%s: %d calls reported (in %d events), want exactly the %d made", filepath.Base(p), calls, events, n)
				}
				if tc.maxEvents > 0 && events > tc.maxEvents {
					t.Errorf("%s: %d events for %d identical calls, want at most %d", filepath.Base(p), events, n, tc.maxEvents)
				}
				if tc.maxEvents == 0 && events != uint64(n) {
					t.Errorf("%s: %d events for %d calls with report-all", filepath.Base(p), events, n)
				}
			}
			// The hook's counter (vigil policy list, the metric) tells
			// how many calls were folded into repeats.
			var folded uint64
			for _, h := range pol.Hooks() {
				folded += h.Folded
			}
			var repeats uint64
			sink.mu.Lock()
			for _, r := range sink.repeats {
				repeats += r
			}
			sink.mu.Unlock()
			if folded != repeats {
				t.Errorf("hooks report %d calls folded; the events' repeat counts add up to %d", folded, repeats)
			}
			// The child is gone: its runs are deleted within a few sweeps.
			m := s.gen.Map(abi.GenericMapGenFolds)
			deadline = time.Now().Add(10 * FoldInterval)
			for {
				var k abi.GenFoldKey
				var v abi.GenFold
				left := 0
				for it := m.Iterate(); it.Next(&k, &v); {
					if k.Tgid == uint32(cmd.Process.Pid) {
						left++
					}
				}
				if left == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("%d runs of the exited child still in the kernel's table", left)
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			cancel()
			<-swept
			stop()
		})
	}
}

// envOpenRepeat makes the test binary a child that opens paths repeatedly:
// lines of "COUNT PATH" (the paths need not exist).
const envOpenRepeat = "VIGIL_TEST_OPEN_REPEAT"

func init() {
	spec := os.Getenv(envOpenRepeat)
	if spec == "" {
		return
	}
	for _, line := range strings.Split(spec, "\n") {
		n, p, _ := strings.Cut(line, " ")
		count, _ := strconv.Atoi(n)
		for range count {
			if fd, err := unixOpen(p); err == nil {
				unixClose(fd)
			}
		}
	}
	os.Exit(0)
}

func unixOpen(p string) (int, error) { return unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0) }
func unixClose(fd int)               { unix.Close(fd) }
