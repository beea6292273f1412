package tracingsensor

import (
	"context"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/internal/kerneltest"
	"github.com/vigilsec/vigil/observer"
	"github.com/vigilsec/vigil/process"
	"github.com/vigilsec/vigil/tracingpolicies"
)

// envOpenPaths makes the test binary a child that calls openat on each of
// the paths (one per line) and exits; most need not exist.
const envOpenPaths = "VIGIL_TEST_OPEN_PATHS"

func init() {
	if list := os.Getenv(envOpenPaths); list != "" {
		for _, p := range strings.Split(list, "\n") {
			if fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
				unix.Close(fd)
			}
		}
		os.Exit(0)
	}
}

type pathSink struct {
	mu    sync.Mutex
	paths []string
}

func (s *pathSink) Export(ev *event.Event) {
	if ev.Kprobe == nil || len(ev.Kprobe.Args) == 0 {
		return
	}
	s.mu.Lock()
	s.paths = append(s.paths, ev.Kprobe.Args[0].Str)
	s.mu.Unlock()
}

// Prefix, Equal and Postfix filters decide the same with the kernel's quick
// rejection by heads (tails for Postfix) as by the full comparison: strings
// shorter than every value, strings whose head is another value's, strings
// that pass the head but not the whole value, and the ones that match.
func TestPrivStringHeads(t *testing.T) {
	f := kerneltest.Features(t)
	ps, cache, log := sensorDeps(t, f)
	sink := &pathSink{}
	s, err := New(Config{Tracefs: f.Kernel.Tracefs, ProcRoot: "/proc"}, ps, f, cache, sink, log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	obs, err := newTestReader(t, ps, s)
	if err != nil {
		t.Fatal(err)
	}
	defer obs()

	doc := `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata: {name: heads}
spec:
  kprobes:
  - call: sys_openat
    syscall: true
    args:
    - {index: 1, type: string, label: filename}
    selectors:
    - matchArgs:
      - {index: 1, operator: Prefix, values: [/vigil-heads/alpha-long-prefix, /vigil-heads/b]}
    - matchArgs:
      - {index: 1, operator: Equal, values: [/vigil-heads/exact-one, /vigil-heads/exactly-two]}
    - matchArgs:
      - {index: 1, operator: NotPrefix, values: [/, vigil-heads-relative-a, vigil-heads-relative-b]}
`
	// With a Postfix selector the filename is read whole on every call,
	// and the head checks take their bytes from the record.
	tailSelectors := `    - matchArgs:
      - {index: 1, operator: Postfix, values: [vigil-tails-alpha-long-suffix, -tb]}
    - matchArgs:
      - {index: 1, operator: Prefix, values: [/vigil-nottails/]}
      - {index: 1, operator: NotPostfix, values: [.keep, -skipped-suffix]}
`
	want := []string{
		"/vigil-heads/alpha-long-prefix", "/vigil-heads/alpha-long-prefix-and-more", // prefix
		"/vigil-heads/b", "/vigil-heads/bravo", // prefix, the shorter value
		"/vigil-heads/exact-one", "/vigil-heads/exactly-two", // equal
		"relative-path-matched-by-not-prefix", "x", // NotPrefix: no value is a prefix of them
	}
	wantTails := []string{
		"/vigil-tails/one.vigil-tails-alpha-long-suffix", "/vigil-tails-alpha-long-suffix", // postfix
		"/vigil-tails/two-tb", "/-tb", // postfix, the shorter value
		"/vigil-nottails/reported", "/vigil-nottails/other-suffix", // NotPostfix: the tail of no value, of a value but not the value
		"/vigil-nottails/c-skipped-suffiX", "/vigil-nottails/d.keeP",
	}
	notWanted := []string{
		"/vigil-heads/alpha-long-prefiX", // head matches, value does not
		"/vigil-heads/a", "/vigil",       // shorter than a value
		"/vigil-heads/c-other",                                                     // head of no value
		"/vigil-heads/exact-one2", "/vigil-heads/exact", "/vigil-heads/exactly-tw", // not equal
		"vigil-heads-relative-a/file", "vigil-heads-relative-bb", // NotPrefix excludes them
		"/vigil-tails/one.vigil-tails-alphA-long-suffix", "/vigil-tails/other-suffix", // tail matches, value does not
		"/vigil-tails/tail-of-none.txt", "/vigil-tails/two-tbx", "/tb", // tail of no value
		"/b",                                                         // shorter than every value
		"/vigil-nottails/a.keep", "/vigil-nottails/b-skipped-suffix", // NotPostfix excludes them
	}
	for _, tc := range []struct {
		name  string
		tails bool
	}{{"heads from the call's memory", false}, {"heads from the record", true}} {
		t.Run(tc.name, func(t *testing.T) {
			d, want, notWanted := doc, want, notWanted
			if tc.tails {
				d += tailSelectors
				want = append(slices.Clone(want), wantTails...)
			} else {
				notWanted = append(slices.Clone(notWanted), wantTails...)
			}
			tps, err := tracingpolicies.Parse("heads.yaml", []byte(d))
			if err != nil {
				t.Fatal(err)
			}
			p, err := s.Load(tps[0], "heads.yaml")
			if err != nil {
				t.Fatal(err)
			}
			defer s.Unload(p.Key())
			sink.mu.Lock()
			sink.paths = nil
			sink.mu.Unlock()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), envOpenPaths+"="+strings.Join(append(append([]string{}, want...), notWanted...), "\n"))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("child: %v: %s", err, out)
			}
			deadline := time.Now().Add(10 * time.Second)
			var got []string
			for time.Now().Before(deadline) {
				sink.mu.Lock()
				got = append([]string(nil), sink.paths...)
				sink.mu.Unlock()
				ok := true
				for _, w := range want {
					if !slices.Contains(got, w) {
						ok = false
					}
				}
				if ok {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			for _, w := range want {
				if !slices.Contains(got, w) {
					t.Errorf("no event for %q", w)
				}
			}
			time.Sleep(100 * time.Millisecond)
			sink.mu.Lock()
			got = append([]string(nil), sink.paths...)
			sink.mu.Unlock()
			for _, n := range notWanted {
				if slices.Contains(got, n) {
					t.Errorf("an event for %q, which no selector matches", n)
				}
			}
		})
	}
}

// newTestReader reads the process sensor's ring buffer into s's decoder
// until the returned function is called.
func newTestReader(t *testing.T, ps *process.Sensor, s *Sensor) (func(), error) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	obs, err := observer.New(ps.Events(), ps.RingReader(), log)
	if err != nil {
		return nil, err
	}
	obs.Route(s.Routes()...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- obs.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}, nil
}
