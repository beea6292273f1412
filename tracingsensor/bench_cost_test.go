package tracingsensor

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/kerneltest"
	"github.com/vigilsec/vigil/tracingpolicies"
)

// prefixSelectors are the selectors the default file-access policy had
// before it matched credential files by their last component (3b61718):
// Prefix and Mask filters only, each dismissed by the path's first bytes or
// the flags.
const prefixSelectors = `
    - matchArgs:
      - index: 1
        operator: Prefix
        values: [/etc/shadow, /etc/gshadow, /etc/sudoers, /etc/ssh/ssh_host_, /root/.ssh/, /root/.aws/, /root/.config/gcloud/, /root/.kube/config, /var/run/secrets/kubernetes.io/]
    - matchArgs:
      - index: 1
        operator: Prefix
        values: [/etc/, /bin/, /sbin/, /usr/bin/, /usr/sbin/, /usr/local/bin/, /usr/local/sbin/, /lib/, /lib64/, /usr/lib/, /usr/lib64/, /boot/]
      - {index: 2, operator: Mask, values: ["0x243"]}
    - matchArgs:
      - {index: 1, operator: Prefix, values: [/var/log/]}
      - {index: 2, operator: Mask, values: ["0x200"]}`

// BenchmarkPrivSyscallCost measures what an openat hook adds to the wall
// time of open+close of a file no selector names, in a child process, next
// to the same loop with nothing loaded (alternating, round by round): the
// whole cost a workload sees, the kernel's tracepoint machinery included.
//
//	sudo VIGIL_PRIVILEGED=1 go test ./tracingsensor -run '^$' -bench PrivSyscallCost -benchtime 5x
func BenchmarkPrivSyscallCost(b *testing.B) {
	f := kerneltest.Features(b)
	ps, cache, log := sensorDeps(b, f)
	s, err := New(Config{Tracefs: f.Kernel.Tracefs, ProcRoot: "/proc"}, ps, f, cache, &countingSink{}, log)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	target := filepath.Join(b.TempDir(), "data.txt")
	if err := os.WriteFile(target, []byte("benchmark\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	calls := 200000
	if n, err := strconv.Atoi(os.Getenv("VIGIL_BENCH_CALLS")); err == nil && n > 0 {
		calls = n // emulated VMs: fewer
	}
	loop := func() time.Duration {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envOpenLoop+"="+strconv.Itoa(calls)+" "+target)
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("open loop: %v: %s", err, out)
		}
		return time.Since(start)
	}
	getppid := func() time.Duration {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envGetppidLoop+"="+strconv.Itoa(calls))
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("getppid loop: %v: %s", err, out)
		}
		return time.Since(start)
	}
	// The floor of two ways to hook openat: an empty program on its
	// syscall tracepoint, and one raw tracepoint on sys_enter that every
	// syscall runs and that returns unless the syscall is openat (how a
	// single dispatch program for all syscall hooks would start).
	if f.Kernel.Tracefs != "" {
		ret0 := asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}
		dispatch := asm.Instructions{
			asm.LoadMem(asm.R2, asm.R1, 8, asm.DWord), // ctx->args[1]: the syscall number
			asm.Mov.Imm(asm.R0, 0),
			asm.JNE.Imm(asm.R2, unix.SYS_OPENAT, "out"),
			asm.Mov.Imm(asm.R0, 0),
			asm.Return().WithSymbol("out"),
		}
		for _, fl := range []struct {
			name   string
			typ    ebpf.ProgramType
			insns  asm.Instructions
			attach func(*ebpf.Program) (link.Link, error)
		}{
			{"floor/tracepoint-empty", ebpf.TracePoint, ret0, func(p *ebpf.Program) (link.Link, error) {
				return link.Tracepoint("syscalls", "sys_enter_openat", p, nil)
			}},
			{"floor/raw_tp-sys_enter-dispatch", ebpf.RawTracepoint, dispatch, func(p *ebpf.Program) (link.Link, error) {
				return link.AttachRawTracepoint(link.RawTracepointOptions{Name: "sys_enter", Program: p})
			}},
		} {
			b.Run(fl.name, func(b *testing.B) {
				prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: fl.typ, Instructions: fl.insns, License: "GPL"})
				if err != nil {
					b.Fatal(err)
				}
				defer prog.Close()
				var with, without, otherWith, otherWithout time.Duration
				for range b.N {
					without += loop()
					otherWithout += getppid()
					l, err := fl.attach(prog)
					if err != nil {
						b.Fatal(err)
					}
					with += loop()
					otherWith += getppid()
					l.Close()
				}
				n := float64(b.N * calls)
				b.ReportMetric(float64(without.Nanoseconds())/n, "base-ns/call")
				b.ReportMetric(float64((with-without).Nanoseconds())/n, "added-ns/call")
				b.ReportMetric(float64(with)/float64(without), "ratio")
				b.ReportMetric(float64((otherWith-otherWithout).Nanoseconds())/n, "getppid-added-ns/call")
			})
		}
	}
	mechs := f.SyscallMechanisms()
	openat := func(selectors string) string {
		return `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: bench-cost
spec:
  kprobes:
  - call: sys_openat
    syscall: true
    args:
    - {index: 1, type: string, label: filename}
    - {index: 2, type: int, label: flags}
    selectors:` + selectors + "\n"
	}
	// The default policy itself, so the figure follows what users load.
	defaultDoc, err := fs.ReadFile(defaultPolicies, "file-access.yaml")
	if err != nil {
		b.Fatal(err)
	}
	// The kernel's run-time statistics give the programs' own time per
	// run, without the tracepoint machinery and the loop's noise.
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatal(err)
	}
	defer stats.Close()
	for _, tc := range []struct{ name, doc string }{
		{"default-file-access", string(defaultDoc)},
		{"prefix-only", openat(prefixSelectors)},
		{"one-int-filter", openat(`
    - matchArgs:
      - {index: 2, operator: Mask, values: ["0x40000000"]}`)},
	} {
		for _, mech := range mechs {
			b.Run(tc.name+"/"+string(mech), func(b *testing.B) {
				tps, err := tracingpolicies.Parse(tc.name+".yaml", []byte(tc.doc))
				if err != nil {
					b.Fatal(err)
				}
				for _, h := range tps[0].Hooks {
					h.Mechanism = mech
				}
				var with, without, otherWith, otherWithout, bpfTime time.Duration
				var bpfRuns uint64
				for range b.N {
					without += loop()
					otherWithout += getppid()
					p, err := s.Load(tps[0], tc.name+".yaml")
					if err != nil {
						b.Fatal(err)
					}
					if got := p.Hooks()[0].Mechanism; got != mech {
						b.Fatalf("the hook is attached with %s, want %s", got, mech)
					}
					with += loop()
					otherWith += getppid()
					for _, a := range p.attachments {
						for _, prog := range a.progs {
							st, err := prog.Stats()
							if err != nil {
								b.Fatal(err)
							}
							bpfTime += st.Runtime
							bpfRuns += st.RunCount
						}
					}
					s.Unload(p.Key())
				}
				n := float64(b.N * calls)
				b.ReportMetric(float64(without.Nanoseconds())/n, "base-ns/call")
				b.ReportMetric(float64((with-without).Nanoseconds())/n, "added-ns/call")
				b.ReportMetric(float64(with)/float64(without), "ratio")
				b.ReportMetric(float64((otherWith-otherWithout).Nanoseconds())/n, "getppid-added-ns/call")
				if bpfRuns > 0 {
					b.ReportMetric(float64(bpfTime.Nanoseconds())/float64(bpfRuns), "bpf-ns/run")
				}
			})
		}
	}
}

// envGetppidLoop makes the test binary a child that calls getppid N times,
// a syscall no policy hooks.
const envGetppidLoop = "VIGIL_BENCH_GETPPID_LOOP"

func init() {
	if n := os.Getenv(envGetppidLoop); n != "" {
		count, _ := strconv.Atoi(n)
		for range count {
			unix.Getppid()
		}
		os.Exit(0)
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}
