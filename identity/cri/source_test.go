package cri

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vigilsec/vigil/identity/source"
)

// recSink records what a source reports.
type recSink struct {
	mu        sync.Mutex
	pods      []source.Pod
	replaces  int
	synced    bool
	failures  []string
	recovered int
	ch        chan struct{}
}

func newRecSink() *recSink { return &recSink{ch: make(chan struct{}, 100)} }

func (s *recSink) poke() {
	select {
	case s.ch <- struct{}{}:
	default:
	}
}

func (s *recSink) Replace(_ string, pods []source.Pod) {
	s.mu.Lock()
	s.pods, s.replaces = pods, s.replaces+1
	s.mu.Unlock()
	s.poke()
}
func (s *recSink) Upsert(string, source.Pod) {}
func (s *recSink) Delete(string, string)     {}
func (s *recSink) Synced(string) {
	s.mu.Lock()
	s.synced = true
	s.mu.Unlock()
	s.poke()
}
func (s *recSink) Failed(_, op string, err error) {
	s.mu.Lock()
	s.failures = append(s.failures, op+": "+err.Error())
	s.mu.Unlock()
	s.poke()
}
func (s *recSink) Recovered(string) {
	s.mu.Lock()
	s.recovered++
	s.mu.Unlock()
	s.poke()
}

func (s *recSink) wait(t *testing.T, what string, cond func(*recSink) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		ok := cond(s)
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-s.ch:
		case <-deadline:
			s.mu.Lock()
			defer s.mu.Unlock()
			t.Fatalf("waiting for %s: replaces %d, failures %q, recovered %d", what, s.replaces, s.failures, s.recovered)
		}
	}
}

func runSource(t *testing.T, s *Source) *recSink {
	t.Helper()
	sink := newRecSink()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, sink) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return sink
}

func TestSourceReportsPods(t *testing.T) {
	f := &fakeRuntime{}
	f.add(fakeFixture)
	c, err := Dial(serve(t, f))
	if err != nil {
		t.Fatal(err)
	}
	sink := runSource(t, NewSource("cri", c, Options{PollInterval: 50 * time.Millisecond}))
	sink.wait(t, "a listing", func(s *recSink) bool { return s.synced && s.replaces > 0 })
	want := []source.Pod{{
		Key: fakeFixture.sandboxID, UID: fakeFixture.uid, Name: "web-0", Namespace: "shop",
		Labels: map[string]string{"app": "web"}, IPs: []netip.Addr{netip.MustParseAddr("10.1.2.3")},
		SandboxID: fakeFixture.sandboxID,
		Containers: []source.Container{{ID: fakeFixture.containerID, Name: "nginx", ImageName: "docker.io/library/nginx:1.27",
			ImageID: "sha256:" + fakeFixture.containerID, StartTime: time.Unix(3, 0).UTC()}},
	}}
	sink.mu.Lock()
	got := sink.pods
	sink.mu.Unlock()
	if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("pods (-want +got):\n%s", diff)
	}
	// Polls that find nothing new report nothing and ask no status.
	time.Sleep(300 * time.Millisecond)
	sink.mu.Lock()
	n := sink.replaces
	sink.mu.Unlock()
	if n != 1 {
		t.Errorf("%d reports of an unchanged runtime, want 1", n)
	}
	if got := f.count("ContainerStatus"); got != 1 {
		t.Errorf("%d ContainerStatus calls for one container, want 1", got)
	}
	if f.count("ListContainers") < 3 {
		t.Errorf("%d listings in 300ms at a 50ms poll", f.count("ListContainers"))
	}

	// A new pod shows up at the next poll.
	second := fakeFixture
	second.sandboxID = strings.Repeat("3", 64)
	second.containerID = strings.Repeat("4", 64)
	second.pod, second.uid = "web-1", "1b6f3c2e-5a41-4d8e-9b7a-2c1d3e4f5a6b"
	f.add(second)
	sink.wait(t, "the second pod", func(s *recSink) bool { return len(s.pods) == 2 })
}

func TestSourceLookup(t *testing.T) {
	f := &fakeRuntime{}
	c, err := Dial(serve(t, f))
	if err != nil {
		t.Fatal(err)
	}
	s := NewSource("cri", c, Options{})
	f.add(fakeFixture)
	ctx := context.Background()
	p, err := s.Lookup(ctx, fakeFixture.containerID)
	if err != nil {
		t.Fatal(err)
	}
	if p.Key != fakeFixture.sandboxID || len(p.Containers) != 1 || p.Containers[0].Name != "nginx" || p.Name != "web-0" {
		t.Errorf("lookup of the container: %+v", p)
	}
	p, err = s.Lookup(ctx, fakeFixture.sandboxID)
	if err != nil || p.Name != "web-0" {
		t.Errorf("lookup of the sandbox: %+v, %v", p, err)
	}
	if _, err := s.Lookup(ctx, strings.Repeat("9", 64)); !errors.Is(err, source.ErrNotFound) {
		t.Errorf("lookup of an unknown id: %v, want ErrNotFound", err)
	}
	f.setFail(codes.Internal)
	if _, err := s.Lookup(ctx, strings.Repeat("8", 64)); err == nil || errors.Is(err, source.ErrNotFound) || !strings.Contains(err.Error(), "the runtime is broken") {
		t.Errorf("lookup on a broken runtime: %v, want its error", err)
	}
}

// TestSourceUnreachable: no runtime behind the socket: failures with a
// hint, retried, and Run keeps going until cancelled.
func TestSourceUnreachable(t *testing.T) {
	c, err := Dial(t.TempDir() + "/nothing.sock")
	if err != nil {
		t.Fatal(err)
	}
	sink := runSource(t, NewSource("cri", c, Options{PollInterval: 20 * time.Millisecond, Timeout: time.Second}))
	sink.wait(t, "two failures", func(s *recSink) bool { return len(s.failures) >= 2 && s.synced })
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if msg := sink.failures[0]; !strings.Contains(msg, "list") || !strings.Contains(msg, "is the runtime running") {
		t.Errorf("failure %q lacks the operation or the hint", msg)
	}
}

// TestSourceRuntimeErrors: a runtime answering errors is reported, and
// recovery is noticed.
func TestSourceRuntimeErrors(t *testing.T) {
	f := &fakeRuntime{failWith: codes.Internal}
	f.add(fakeFixture)
	c, err := Dial(serve(t, f))
	if err != nil {
		t.Fatal(err)
	}
	sink := runSource(t, NewSource("cri", c, Options{PollInterval: 20 * time.Millisecond}))
	sink.wait(t, "a failure", func(s *recSink) bool { return len(s.failures) > 0 })
	sink.mu.Lock()
	if !strings.Contains(sink.failures[0], "the runtime is broken") {
		t.Errorf("failure %q lacks the runtime's message", sink.failures[0])
	}
	sink.mu.Unlock()
	f.setFail(codes.OK)
	sink.wait(t, "recovery and pods", func(s *recSink) bool { return s.recovered > 0 && len(s.pods) == 1 })
}

// TestSourceEvents: with container events, a new container is listed at
// once even though the resync interval is long.
func TestSourceEvents(t *testing.T) {
	f := &fakeRuntime{events: make(chan *runtimeapi.ContainerEventResponse, 1)}
	c, err := Dial(serve(t, f))
	if err != nil {
		t.Fatal(err)
	}
	sink := runSource(t, NewSource("cri", c, Options{PollInterval: 20 * time.Millisecond, ResyncInterval: time.Hour}))
	sink.wait(t, "the first listing", func(s *recSink) bool { return s.synced })
	// Let the event stream start, then check that polling stopped.
	time.Sleep(100 * time.Millisecond)
	before := f.count("ListContainers")
	time.Sleep(100 * time.Millisecond)
	if n := f.count("ListContainers"); n != before {
		t.Fatalf("listed %d times in 100ms while events flow", n-before)
	}
	f.add(fakeFixture)
	f.events <- &runtimeapi.ContainerEventResponse{ContainerId: fakeFixture.containerID, ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT}
	sink.wait(t, "the pod after the event", func(s *recSink) bool { return len(s.pods) == 1 })
}

func TestDialRejectsRelative(t *testing.T) {
	for _, ep := range []string{"containerd.sock", "tcp://127.0.0.1:1"} {
		if _, err := Dial(ep); err == nil {
			t.Errorf("Dial(%q) accepted", ep)
		}
	}
}
