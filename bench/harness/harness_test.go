package harness

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want Summary
	}{
		{[]float64{3, 1, 2}, Summary{N: 3, Min: 1, Q1: 1.5, Median: 2, Q3: 2.5, Max: 3}},
		{[]float64{4, 1, 3, 2}, Summary{N: 4, Min: 1, Q1: 1.75, Median: 2.5, Q3: 3.25, Max: 4}},
		{[]float64{7}, Summary{N: 1, Min: 7, Q1: 7, Median: 7, Q3: 7, Max: 7}},
	} {
		if diff := cmp.Diff(tc.want, Summarize(tc.in)); diff != "" {
			t.Errorf("Summarize(%v) (-want +got):\n%s", tc.in, diff)
		}
	}
	if s := Summarize(nil); !math.IsNaN(s.Median) || s.N != 0 {
		t.Errorf("Summarize(nil) = %+v, want NaN median", s)
	}
	if got := Summarize([]float64{1, 2, 3}).RelSpread(); got != 1 {
		t.Errorf("RelSpread = %v, want 1 ((3-1)/2)", got)
	}
}

// Ratios pair the runs of the same round and skip a round that lacks a side.
func TestRatios(t *testing.T) {
	got := Ratios([]float64{2, 3, 0, 8}, []float64{1, 1, 1, 4, 9})
	if diff := cmp.Diff([]float64{2, 3, 2}, got); diff != "" {
		t.Errorf("Ratios (-want +got):\n%s", diff)
	}
}

func TestReplaceSection(t *testing.T) {
	doc := "# Benchmarks\n\n## Exporter\ntext\n"
	first := ReplaceSection(doc, "report one\n")
	if !strings.HasPrefix(first, doc) || !strings.Contains(first, BeginMarker+"\nreport one\n"+EndMarker) {
		t.Fatalf("first write did not append the section:\n%s", first)
	}
	second := ReplaceSection(first+"\n## Rules\nmore\n", "report two")
	if strings.Contains(second, "report one") || !strings.Contains(second, "report two") {
		t.Errorf("second write did not replace the section:\n%s", second)
	}
	if !strings.Contains(second, "## Exporter\ntext") || !strings.Contains(second, "## Rules\nmore") {
		t.Errorf("second write lost the text around the section:\n%s", second)
	}
	if strings.Count(second, BeginMarker) != 1 {
		t.Errorf("markers duplicated:\n%s", second)
	}
}

func TestParseGoBench(t *testing.T) {
	out := []byte(`goos: linux
BenchmarkPipeline/host   	  500000	      1890 ns/op	 529100 events/s	    1064 B/op	       0 allocs/op
BenchmarkPipeline/host   	  500000	      1900 ns/op	 526000 events/s	    1064 B/op	       0 allocs/op
BenchmarkPrivSyscallHook/no-match-2 	  200000	      3100 ns/op	       761.7 bpf-ns/call
PASS
`)
	g := ParseGoBench(out)
	if diff := cmp.Diff([]string{"BenchmarkPipeline/host", "BenchmarkPrivSyscallHook/no-match"}, g.Order); diff != "" {
		t.Errorf("Order (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]float64{529100, 526000}, g.Results["BenchmarkPipeline/host"]["events/s"]); diff != "" {
		t.Errorf("events/s (-want +got):\n%s", diff)
	}
	if got := g.Results["BenchmarkPrivSyscallHook/no-match"]["bpf-ns/call"]; len(got) != 1 || got[0] != 761.7 {
		t.Errorf("bpf-ns/call = %v, want [761.7]", got)
	}
}

// A second run refuses to start while the first holds the lock, and says who
// holds it.
func TestLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bench.lock")
	l, err := TakeLock(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Held(); err != nil {
		t.Errorf("Held: %v", err)
	}
	if _, err := TakeLock(path); err == nil || !strings.Contains(err.Error(), "another benchmark run is active") {
		t.Errorf("second TakeLock: %v, want a refusal", err)
	}
	l.Release()
	l2, err := TakeLock(path)
	if err != nil {
		t.Fatalf("TakeLock after Release: %v", err)
	}
	l2.Release()
}

func TestOptionsValidate(t *testing.T) {
	o := DefaultOptions()
	if err := o.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	q := o.Quick()
	if err := q.Validate(); err != nil {
		t.Fatalf("quick: %v", err)
	}
	o.Rounds, o.Only = 1, []string{"tabel"}
	err := o.Validate()
	if err == nil || !strings.Contains(err.Error(), "-rounds 1") || !strings.Contains(err.Error(), `-only "tabel"`) {
		t.Errorf("Validate = %v, want errors naming -rounds and -only", err)
	}
}

func TestCgroup2Root(t *testing.T) {
	mi := filepath.Join(t.TempDir(), "mountinfo")
	writeFile(t, mi, `25 30 0:23 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
`)
	got, err := Cgroup2Root(mi)
	if err != nil || got != "/sys/fs/cgroup/unified" {
		t.Errorf("Cgroup2Root = %q, %v; want /sys/fs/cgroup/unified", got, err)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// -configs names exactly the configurations the table runs, and selects
// them in the table's order.
func TestConfigNames(t *testing.T) {
	h := &Harness{opts: DefaultOptions()}
	if diff := cmp.Diff(ConfigNames, configNames(h.allConfigs())); diff != "" {
		t.Errorf("ConfigNames and the configurations differ (-names +configs):\n%s", diff)
	}
	h.opts.Configs = []string{"netpol", "default"}
	if got := configNames(h.agentConfigs()); !cmp.Equal(got, []string{"default", "netpol"}) {
		t.Errorf("-configs netpol,default ran %v", got)
	}
	o := DefaultOptions()
	o.Configs = []string{"defualt"}
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), `-configs "defualt"`) {
		t.Errorf("Validate of a misspelt configuration: %v", err)
	}
}

// A guest's report keeps its tables and moves its headings below the
// host's "Inside a VM" heading.
func TestGuestMarkdown(t *testing.T) {
	o := DefaultOptions()
	o.Configs = []string{"default"}
	h := &Harness{opts: o, rep: newReport(o)}
	h.configs = h.agentConfigs()
	h.rep.Configs = h.configs
	h.rep.Workloads = h.Workloads()
	w := h.rep.Workloads[0]
	for round, v := range []float64{1, 1.2} {
		h.rep.addValue("", w, round, Measurement{Values: map[string]float64{"wall time": 2}, Seconds: 2, Ops: 10})
		h.rep.addValue("default", w, round, Measurement{Values: map[string]float64{"wall time": 2 * v}, Seconds: 2 * v, Ops: 10})
	}
	md := h.rep.GuestMarkdown()
	if strings.Contains(md, "\n### ") || !strings.Contains(md, "#### Overhead") {
		t.Errorf("headings not moved down:\n%s", md)
	}
	if !strings.Contains(md, "| exec | wall time | default | 1.100 |") {
		t.Errorf("no exec ratio of 1.1 (median of 1 and 1.2):\n%s", md)
	}
	r := newReport(o)
	r.vm = []*vmRun{{kernel: "6.12", text: md, seconds: 100}}
	var b strings.Builder
	r.vmMarkdown(func(f string, a ...any) { b.WriteString(fmt.Sprintf(f, a...)) })
	if !strings.Contains(b.String(), "### Inside a VM on Debian's 6.12 kernel") || !strings.Contains(b.String(), "| exec | wall time | default | 1.100 |") {
		t.Errorf("vm section:\n%s", b.String())
	}
}

// A part that failed is named at the top of the report with its error, so
// a report with missing figures says why.
func TestFailedPartsInReport(t *testing.T) {
	o := Options{Rounds: 1, Repo: "."}
	r := newReport(o)
	r.Failed = []PartFailure{{Part: "netpol", Err: "server in namespace vigilbench-s: connection refused"}}
	md := r.Markdown()
	if !strings.Contains(md, "**Parts that did not complete**") || !strings.Contains(md, "- `netpol`: server in namespace vigilbench-s: connection refused") {
		t.Errorf("failed part not reported:\n%s", md)
	}
	if md := newReport(o).Markdown(); strings.Contains(md, "did not complete") {
		t.Errorf("a report without failures says some did not complete:\n%s", md)
	}
}

// -workloads names exactly the workloads of the table.
func TestWorkloadNames(t *testing.T) {
	h := &Harness{opts: DefaultOptions(), redisPort: 6379}
	var names []string
	for _, w := range h.Workloads() {
		names = append(names, w.Name)
	}
	if diff := cmp.Diff(WorkloadNames, names); diff != "" {
		t.Errorf("WorkloadNames and the workloads differ (-names +workloads):\n%s", diff)
	}
	o := DefaultOptions()
	o.Workloads = []string{"conect"}
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), `-workloads "conect"`) {
		t.Errorf("Validate of a misspelt workload: %v", err)
	}
}
