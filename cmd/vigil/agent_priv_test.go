package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/agent"
	"github.com/vigilsec/vigil/agent/agenttest"
)

// vigilStream is a long-running vigil command (vigil events) whose stdout
// is read line by line.
type vigilStream struct {
	t      *testing.T
	lines  chan string
	stderr *bytes.Buffer
}

// startVigil starts `vigil args...` (this test binary, see TestMain) and
// stops it at the end of the test.
func startVigil(t *testing.T, args ...string) *vigilStream {
	t.Helper()
	cmd := exec.Command("/proc/self/exe", args...)
	cmd.Args[0] = "vigil"
	cmd.Env = append(os.Environ(), envRunAsVigil+"=1")
	s := &vigilStream{t: t, lines: make(chan string, 4096), stderr: &bytes.Buffer{}}
	cmd.Stderr = s.stderr
	out, err := cmd.StdoutPipe()
	agenttest.FatalIf(t, err)
	agenttest.FatalIf(t, cmd.Start())
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return s
}

// next returns the first line for which match is true, and the lines
// before it.
func (s *vigilStream) next(what string, match func(string) bool) (string, []string) {
	s.t.Helper()
	var before []string
	timeout := time.After(agenttest.Timeout())
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				s.t.Fatalf("vigil stopped before %s; stderr: %s; lines: %q", what, s.stderr, before)
			}
			if match(l) {
				return l, before
			}
			before = append(before, l)
		case <-timeout:
			s.t.Fatalf("no %s within %v; lines: %q", what, agenttest.Timeout(), before)
		}
	}
}

// waitSubscribers waits until n live tails follow the agent (the harness
// has one of its own).
func waitSubscribers(t *testing.T, h *agenttest.Harness, n int) {
	t.Helper()
	deadline := time.Now().Add(agenttest.Timeout())
	for time.Now().Before(deadline) {
		mfs, err := h.Metrics().Gather()
		agenttest.FatalIf(t, err)
		for _, mf := range mfs {
			if mf.GetName() == "vigil_export_subscribers" && int(mf.GetMetric()[0].GetGauge().GetValue()) >= n {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("fewer than %d subscribers within %v", n, agenttest.Timeout())
}

// vigil events with tetra getevents's flags, against a real agent: the
// compact lines of a process that opens a watched file (exec, the policy
// event with its policy, exit), and nothing of the processes the flags
// leave out.
func TestPrivEventsCompact(t *testing.T) {
	dir := t.TempDir()
	watched := filepath.Join(dir, "watched")
	agenttest.FatalIf(t, os.MkdirAll(watched, 0o755))
	file := filepath.Join(watched, "a")
	agenttest.FatalIf(t, os.WriteFile(file, []byte("x"), 0o644))
	pol := agenttest.WritePolicy(t, t.TempDir(), "p.yaml", fmt.Sprintf(agenttest.OpenatPrefixPolicy, watched))
	h := agenttest.StartAgent(t, func(c *agent.Config) { c.Policies = []string{pol} })
	h.WaitPolicy("openat-watched")

	cat := agenttest.Resolved(t, "/bin/cat")
	compact := startVigil(t, "events", "--socket", h.Socket, "-o", "compact", "--process", filepath.Base(cat)+"$", "--color", "never")
	js := startVigil(t, "events", "--socket", h.Socket, "--event-types", "PROCESS_EXEC", "--policy-names", "no-such-policy",
		"--event-types", "PROCESS_KPROBE", "--process", filepath.Base(cat)+"$")
	stamped := startVigil(t, "events", "--socket", h.Socket, "-o", "compact", "--timestamps", "--host",
		"-e", "PROCESS_KPROBE", "--policy-names", "openat-watched")
	waitSubscribers(t, h, 4)

	agenttest.FatalIf(t, agenttest.Command(t, "/bin/true", "not-"+filepath.Base(cat)).Run())
	agenttest.FatalIf(t, agenttest.Command(t, "/bin/cat", file).Run())

	exec, before := compact.next("exec line", func(l string) bool { return strings.HasPrefix(l, "🚀 process") && strings.Contains(l, file) })
	if want := "🚀 process " + cat + " " + file; exec != want {
		t.Errorf("exec line\n got %q\nwant %q", exec, want)
	}
	open, more := compact.next("open line", func(l string) bool { return strings.Contains(l, "[openat-watched]") })
	if want := "📬 openat  " + cat + " " + file + " "; !strings.HasPrefix(open, want) {
		t.Errorf("open line\n got %q\nwant it to start with %q", open, want)
	}
	exit, rest := compact.next("exit line", func(l string) bool { return strings.HasPrefix(l, "💥 exit") && strings.Contains(l, file) })
	if want := "💥 exit    " + cat + " " + file + " 0"; exit != want {
		t.Errorf("exit line\n got %q\nwant %q", exit, want)
	}
	for _, l := range append(append(before, more...), rest...) {
		if !strings.Contains(l, cat) && !strings.HasPrefix(l, "⚠️ lost") {
			t.Errorf("--process %s$ let through %q", filepath.Base(cat), l)
		}
	}

	// --policy-names selects policy events only: an exec has no policy,
	// and no event comes from no-such-policy. The stamped stream has the
	// open, with its time first.
	line, _ := stamped.next("stamped open line", func(l string) bool { return strings.Contains(l, file) })
	ts, rest0, _ := strings.Cut(line, " ")
	if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || !strings.HasPrefix(rest0, "📬 openat  "+cat) {
		t.Errorf("stamped line %q: time %q (%v)", line, ts, err)
	}
	select {
	case l := <-js.lines:
		t.Errorf("--event-types PROCESS_EXEC,PROCESS_KPROBE --policy-names no-such-policy printed %q", l)
	default:
	}
}
