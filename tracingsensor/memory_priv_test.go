package tracingsensor

import (
	"io/fs"
	"runtime"
	"strings"
	"testing"

	"github.com/vigilsec/vigil/internal/kerneltest"
	"github.com/vigilsec/vigil/kprobes"
	"github.com/vigilsec/vigil/tracingpolicies"
)

// loadDefaultPolicies loads the agent's default tracing policies into s and
// returns how many loaded; one that names a hook the kernel lacks (module
// loading on a kernel without modules) is skipped, as the agent does.
func loadDefaultPolicies(tb testing.TB, s *Sensor) int {
	tb.Helper()
	files, err := fs.Glob(defaultPolicies, "*.yaml")
	if err != nil || len(files) == 0 {
		tb.Fatalf("default policies: %v (%d files)", err, len(files))
	}
	n := 0
	for _, file := range files {
		doc, err := fs.ReadFile(defaultPolicies, file)
		if err != nil {
			tb.Fatal(err)
		}
		tps, err := tracingpolicies.Parse(file, doc)
		if err != nil {
			tb.Fatal(err)
		}
		for _, tp := range tps {
			if _, err := s.Load(tp, file); err != nil {
				if !strings.Contains(err.Error(), "this kernel has no") {
					tb.Fatalf("%s: %v", file, err)
				}
				tb.Logf("skipped: %v", err)
				continue
			}
			n++
		}
	}
	return n
}

// The generic object's specification and the kernel's BTF are parsed for a
// policy's programs and not kept once they are loaded: a second round of
// policies still loads.
func TestPrivObjectSpecNotKept(t *testing.T) {
	f := kerneltest.Features(t)
	ps, cache, log := sensorDeps(t, f)
	s, err := New(Config{Tracefs: f.Kernel.Tracefs, ProcRoot: "/proc"}, ps, f, cache, &countingSink{}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.gen.spec != nil {
		t.Error("the sensor keeps the object's specification before any policy is loaded")
	}
	if n := loadDefaultPolicies(t, s); n < 3 {
		t.Fatalf("%d default policies loaded", n)
	}
	if s.gen.spec != nil {
		t.Error("the sensor keeps the object's specification after loading the default policies")
	}
	for _, p := range s.Policies() {
		if err := s.Unload(p.Key()); err != nil {
			t.Fatal(err)
		}
	}
	if n := loadDefaultPolicies(t, s); len(s.Policies()) != n {
		t.Errorf("%d policies loaded the second time, want %d", len(s.Policies()), n)
	}
}

// BenchmarkPrivSensorMemory reports the heap a sensor holds with the
// agent's default policies loaded (after a garbage collection).
//
//	sudo VIGIL_PRIVILEGED=1 go test ./tracingsensor -run '^$' -bench PrivSensorMemory -benchtime 1x
func BenchmarkPrivSensorMemory(b *testing.B) {
	f := kerneltest.Features(b)
	ps, cache, log := sensorDeps(b, f)
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	var held uint64
	for range b.N {
		kprobes.ReleaseKernelTypes()
		before := heap()
		s, err := New(Config{Tracefs: f.Kernel.Tracefs, ProcRoot: "/proc"}, ps, f, cache, &countingSink{}, log)
		if err != nil {
			b.Fatal(err)
		}
		loadDefaultPolicies(b, s)
		// What the agent lets go once it is ready: the kernel's BTF
		// that the loads shared.
		kprobes.ReleaseKernelTypes()
		held += heap() - before
		runtime.KeepAlive(s)
		s.Close()
	}
	b.ReportMetric(float64(held)/float64(b.N)/(1<<10), "held-KiB")
}
