package tracingsensor

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/internal/kerneltest"
	"github.com/vigilsec/vigil/process"
	"github.com/vigilsec/vigil/tracingpolicies"
)

// fileAccessSelectors are the selectors of the default file-access policy
// (agent/defaultpolicies/file-access.yaml) on openat's filename and flags.
const fileAccessSelectors = `
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
	ps, err := process.NewSensor(nil, f)
	if err != nil {
		b.Fatal(err)
	}
	defer ps.Close()
	cache, err := process.NewCache(process.Config{NodeName: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	s, err := New(Config{Tracefs: f.Kernel.Tracefs, ProcRoot: "/proc"}, ps, f, cache, &countingSink{}, log)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	target := filepath.Join(b.TempDir(), "data.txt")
	if err := os.WriteFile(target, []byte("benchmark\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	const calls = 200000
	loop := func() time.Duration {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envOpenLoop+"="+strconv.Itoa(calls)+" "+target)
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("open loop: %v: %s", err, out)
		}
		return time.Since(start)
	}
	for _, tc := range []struct{ name, selectors string }{
		{"default-file-access", fileAccessSelectors},
		{"one-int-filter", `
    - matchArgs:
      - {index: 2, operator: Mask, values: ["0x40000000"]}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			doc := `apiVersion: cilium.io/v1alpha1
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
    selectors:` + tc.selectors + "\n"
			tps, err := tracingpolicies.Parse("bench-cost.yaml", []byte(doc))
			if err != nil {
				b.Fatal(err)
			}
			var with, without time.Duration
			for range b.N {
				without += loop()
				p, err := s.Load(tps[0], "bench-cost.yaml")
				if err != nil {
					b.Fatal(err)
				}
				with += loop()
				s.Unload(p.Key())
			}
			n := float64(b.N * calls)
			b.ReportMetric(float64(without.Nanoseconds())/n, "base-ns/call")
			b.ReportMetric(float64((with-without).Nanoseconds())/n, "added-ns/call")
			b.ReportMetric(float64(with)/float64(without), "ratio")
		})
	}
}
