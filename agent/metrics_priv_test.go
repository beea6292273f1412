package agent

import (
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/rlimit"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/kerneltest"
)

// bpfRuns is the vigil_bpf_program_runs_total of program name, -1 when
// the collector reports no such program.
func bpfRuns(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "vigil_bpf_program_runs_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "program" && l.GetValue() == name {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}

// The agent's programs' run counts, scrape after scrape (the second from
// the names the first one read), and nothing of programs not the agent's.
func TestPrivBPFCollector(t *testing.T) {
	kerneltest.Require(t)
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close()
	load := func(name string) *ebpf.Program {
		p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: name, Type: ebpf.SocketFilter, License: "GPL",
			Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	ours, theirs := load("flow_collector"), load("other_collector")
	run := func(p *ebpf.Program, n int) {
		for range n {
			if _, err := p.Run(&ebpf.RunOptions{Data: make([]byte, 14)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(newBPFCollector())
	run(ours, 3)
	run(theirs, 2)
	if got := bpfRuns(t, reg, "flow_collector"); got != 3 {
		t.Errorf("first scrape: %v runs of the agent's program, want 3", got)
	}
	run(ours, 4)
	if got := bpfRuns(t, reg, "flow_collector"); got != 7 {
		t.Errorf("second scrape: %v runs of the agent's program, want 7", got)
	}
	if got := bpfRuns(t, reg, "other_collector"); got != -1 {
		t.Errorf("a program not the agent's is reported (%v runs)", got)
	}
}
