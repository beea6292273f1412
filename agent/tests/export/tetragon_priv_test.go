package export_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/vigilsec/vigil/agent"
	"github.com/vigilsec/vigil/agent/agenttest"
	"github.com/vigilsec/vigil/exporter"
	"github.com/vigilsec/vigil/exporter/tetragonschema"
	"github.com/vigilsec/vigil/internal/kerneltest"
	"github.com/vigilsec/vigil/kprobes"
)

var record = flag.Bool("record", false, "write the lines of the run to exporter/tetragonschema/testdata/recorded.jsonl")

const recordFile = "../../../exporter/tetragonschema/testdata/recorded.jsonl"

// A policy whose events carry arguments of several kinds: a tracepoint
// with a string and an int, a syscall hook with a 64-bit unsigned
// argument, and a Sigkill on a syscall hook.
const corpusPolicy = `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: export-corpus
spec:
  tracepoints:
  - subsystem: syscalls
    event: sys_enter_openat
    args:
    - {index: 6, type: string, label: filename}
    - {index: 7, type: int, label: flags}
    selectors:
    - matchArgs:
      - {index: 6, operator: Prefix, values: ["%[1]s/traced"]}
  kprobes:
  - call: sys_openat
    syscall: true
    args:
    - {index: 1, type: string, label: filename}
    - {index: 2, type: int, label: flags}
    selectors:
    - matchArgs:
      - {index: 1, operator: Equal, values: ["%[1]s/kill-me"]}
      matchActions:
      - action: Sigkill
  - call: sys_unshare
    syscall: true
    args:
    - {index: 0, type: uint64, label: flags}
    selectors:
    - matchArgs:
      - {index: 0, operator: Mask, values: ["0x10000000"]}
`

// strict parses every line with Tetragon's schema and returns the event
// members seen, with how many lines had each.
func strict(t *testing.T, lines [][]byte) map[string]int {
	t.Helper()
	s, err := tetragonschema.Load()
	agenttest.FatalIf(t, err)
	kinds := map[string]int{}
	for _, line := range lines {
		kind, err := s.Check(bytes.TrimSpace(line))
		if err != nil {
			t.Errorf("a line of --export-format tetragon does not parse with Tetragon's schema: %v\n%s", err, line)
			continue
		}
		kinds[kind]++
	}
	t.Logf("%d lines parsed strictly with Tetragon's schema: %v", len(lines), kinds)
	return kinds
}

var recorded [][]byte

func keep(t *testing.T, lines [][]byte) {
	recorded = append(recorded, lines...)
	if !*record {
		return
	}
	var b bytes.Buffer
	for _, l := range recorded {
		b.Write(bytes.TrimSpace(l))
		b.WriteByte('\n')
	}
	agenttest.FatalIf(t, os.WriteFile(recordFile, b.Bytes(), 0o644))
}

// TestPrivTetragonExport: exec, exit, a tracepoint and syscall hooks with
// arguments, a Sigkill (and the same selector in monitor mode), an LSM
// Override, and the losses of the export rate limit, all as
// the agent writes them with --export-format tetragon, parse strictly with
// Tetragon's schema.
func TestPrivTetragonExport(t *testing.T) {
	kerneltest.Require(t)
	t.Run("events", func(t *testing.T) {
		dir := t.TempDir()
		agenttest.FatalIf(t, os.WriteFile(filepath.Join(dir, "traced"), []byte("x"), 0o644))
		agenttest.FatalIf(t, os.WriteFile(filepath.Join(dir, "kill-me"), []byte("x"), 0o644))
		pol := agenttest.WritePolicy(t, t.TempDir(), "corpus.yaml", fmt.Sprintf(corpusPolicy, dir))
		h := agenttest.StartAgent(t, func(c *agent.Config) {
			c.Policies = []string{pol}
			c.Export.Format = "tetragon"
		})
		h.WaitPolicy("export-corpus")

		_, _, traced := agenttest.RunHelper(t, "open", nil, filepath.Join(dir, "traced"))
		_, killed, victim := agenttest.RunHelper(t, "open", nil, filepath.Join(dir, "kill-me"))
		if !killed {
			t.Fatal("the Sigkill selector did not kill its process")
		}
		_, _, unshared := agenttest.RunHelper(t, "unshare-user", nil)

		h.WaitFor("exec", agenttest.ExecOf(traced))
		h.WaitFor("exit", agenttest.ExitOf(traced))
		tp := h.WaitFor("tracepoint", agenttest.KprobeOf("process_tracepoint", traced, "export-corpus"))
		if args := agenttest.ArgsOf(tp, "process_tracepoint"); len(args) != 2 || args[0]["string_arg"] != filepath.Join(dir, "traced") {
			t.Errorf("tracepoint args %v", args)
		}
		kill := h.WaitFor("sigkill", agenttest.KprobeOf("process_kprobe", victim, "export-corpus"))
		if kill.Str("process_kprobe.action") != "KPROBE_ACTION_SIGKILL" {
			t.Errorf("action %q, want KPROBE_ACTION_SIGKILL", kill.Str("process_kprobe.action"))
		}
		if exit := h.WaitFor("killed exit", agenttest.ExitOf(victim)); exit.Str("process_exit.signal") != "SIGKILL" {
			t.Errorf("exit %s", exit)
		}
		un := h.WaitFor("unshare", agenttest.KprobeOf("process_kprobe", unshared, "export-corpus"))
		if args := agenttest.ArgsOf(un, "process_kprobe"); len(args) != 1 || args[0]["size_arg"] != fmt.Sprint(syscall.CLONE_NEWUSER) {
			t.Errorf("unshare args %v, want a size_arg (Tetragon's 64-bit unsigned kind)", args)
		}
		// In monitor mode the process lives, and Tetragon's action is
		// what was done: the call was reported.
		h.SetMode("export-corpus", "monitor")
		_, killed, spared := agenttest.RunHelper(t, "open", nil, filepath.Join(dir, "kill-me"))
		if killed {
			t.Fatal("killed in monitor mode")
		}
		mon := h.WaitFor("monitor event", agenttest.KprobeOf("process_kprobe", spared, "export-corpus"))
		if mon.Str("process_kprobe.action") != "KPROBE_ACTION_POST" || mon.Get("process_kprobe.monitor") != nil {
			t.Errorf("monitor-mode event %s, want action KPROBE_ACTION_POST and no Vigil member", mon)
		}

		lines := h.Lines()
		kinds := strict(t, lines)
		for _, want := range []string{"process_exec", "process_exit", "process_tracepoint", "process_kprobe"} {
			if kinds[want] == 0 {
				t.Errorf("no %s line among %v", want, kinds)
			}
		}
		keep(t, lines)
	})

	t.Run("lsm", func(t *testing.T) {
		kerneltest.SkipIfNotSupported(t, kprobes.FeatureLSM)
		agenttest.EnsureFile(t, "/etc/shadow")
		dir := agenttest.ExamplePolicy(t, "deny-shadow-read", nil)
		h := agenttest.StartAgent(t, func(c *agent.Config) {
			c.Policies = []string{dir}
			c.Export.Format = "tetragon"
		})
		h.WaitPolicy("deny-shadow-read")
		errno, _, pid := agenttest.RunHelper(t, "open", nil, "/etc/shadow")
		if errno != int(syscall.EACCES) {
			t.Fatalf("open of /etc/shadow: errno %d, want EACCES", errno)
		}
		e := h.WaitFor("override", agenttest.KprobeOf("process_lsm", pid, "deny-shadow-read"))
		if e.Str("process_lsm.action") != "KPROBE_ACTION_OVERRIDE" {
			t.Errorf("action %q", e.Str("process_lsm.action"))
		}
		if kinds := strict(t, h.Lines()); kinds["process_lsm"] == 0 {
			t.Errorf("no process_lsm line among %v", kinds)
		}
	})

	t.Run("losses", func(t *testing.T) {
		h := agenttest.StartAgent(t, func(c *agent.Config) {
			c.Export.Format = "tetragon"
			c.Export.RateLimit = 1
			c.Export.LostEventsInterval = exporter.Duration(100 * time.Millisecond)
		})
		for i := 0; i < 5; i++ {
			agenttest.RunHelper(t, "noop", nil)
		}
		info := h.WaitFor("rate_limit_info", func(e agenttest.Event) bool { return e.Get("rate_limit_info") != nil })
		if info.Str("rate_limit_info.number_of_dropped_process_events") == "" {
			t.Errorf("rate_limit_info %s", info)
		}
		lines := h.Lines()
		if kinds := strict(t, lines); kinds["rate_limit_info"] == 0 {
			t.Errorf("no rate_limit_info line among %v", kinds)
		}
		keep(t, lines)
	})
}
