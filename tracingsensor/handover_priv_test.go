package tracingsensor

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/vigilsec/vigil/internal/kerneltest"
	"github.com/vigilsec/vigil/kprobes"
	"github.com/vigilsec/vigil/tracingpolicies"
)

func loadOpenPolicy(t *testing.T, s *Sensor, name, path, action string) *Policy {
	t.Helper()
	doc := fmt.Sprintf(`apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata: {name: %s}
spec:
  kprobes:
  - call: sys_openat
    syscall: true
    args:
    - {index: 1, type: string}
    selectors:
    - matchArgs:
      - {index: 1, operator: Equal, values: [%s]}
      matchActions: [{action: %s}]
`, name, path, action)
	tps, err := tracingpolicies.Parse(name+".yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Load(tps[0], name+".yaml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func matched(p *Policy) uint64 {
	var n uint64
	for _, h := range p.Hooks() {
		n += h.Matched
	}
	return n
}

// Two generations of the same policy, loaded by two sensors that share
// gen_active: only the copies of the active generation see a call (count
// it, report it, act on it), and one write hands the calls over.
func TestPrivGenerationHandover(t *testing.T) {
	f := kerneltest.Features(t)
	active, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer active.Close()
	if err := active.Put(uint32(0), uint32(1)); err != nil {
		t.Fatal(err)
	}
	path := fmt.Sprintf("/vigil-handover-%d", os.Getpid())
	var pols [2]*Policy
	for i := range pols {
		ps, cache, log := sensorDeps(t, f)
		s, err := New(Config{Tracefs: f.Kernel.Tracefs, ProcRoot: "/proc", Generation: uint32(i + 1), Active: active}, ps, f, cache, &countingSink{}, log)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		pols[i] = loadOpenPolicy(t, s, "handover", path, "Post")
	}
	// The sensors' agent is this process, whose own calls no policy sees:
	// a child opens the path.
	open := func() {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envOpenPaths+"="+path)
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
	}
	open()
	if a, b := matched(pols[0]), matched(pols[1]); a != 1 || b != 0 {
		t.Errorf("generation 1 active: calls matched by generation 1: %d, by generation 2: %d; want 1 and 0", a, b)
	}
	if err := active.Put(uint32(0), uint32(2)); err != nil {
		t.Fatal(err)
	}
	open()
	open()
	if a, b := matched(pols[0]), matched(pols[1]); a != 1 || b != 2 {
		t.Errorf("generation 2 active: calls matched by generation 1: %d, by generation 2: %d; want 1 and 2", a, b)
	}
}

// A policy loaded with a pin directory keeps killing after the sensor (and
// the process sensor it reads) closed; removing its pins ends it. Unload
// removes its pins.
func TestPrivPinnedPolicyOutlivesClose(t *testing.T) {
	f := kerneltest.Features(t)
	dir := fmt.Sprintf("/sys/fs/bpf/vigil-test-%d-pins", os.Getpid())
	if _, err := kprobes.EnsurePinDir(dir); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ps, cache, log := sensorDeps(t, f)
	s, err := New(Config{Tracefs: f.Kernel.Tracefs, ProcRoot: "/proc", PinDir: filepath.Join(dir, "policies")}, ps, f, cache, &countingSink{}, log)
	if err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("/vigil-pinned-%d-", os.Getpid())
	loadOpenPolicy(t, s, "kill-open", base+"kill", "Sigkill")
	loadOpenPolicy(t, s, "unloaded", base+"unloaded", "Sigkill")
	if n, err := kprobes.CountPins(dir); err != nil || n != 2 {
		t.Fatalf("%d pins (%v), want 2: one link per policy", n, err)
	}
	unloaded, err := kprobes.PinnedLinks(s.Get("unloaded").pinDir())
	if err != nil || len(unloaded) != 1 {
		t.Fatalf("links of the policy to unload: %v %v", unloaded, err)
	}
	if err := s.Unload("unloaded"); err != nil {
		t.Fatal(err)
	}
	if n, _ := kprobes.CountPins(dir); n != 1 {
		t.Errorf("%d pins after an unload, want 1", n)
	}
	if err := kprobes.WaitDetached(unloaded, 10*time.Second); err != nil {
		t.Fatal(err)
	}

	killed := func(path string) bool {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envOpenPaths+"="+path)
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws := ee.Sys().(syscall.WaitStatus); ws.Signaled() && ws.Signal() == syscall.SIGKILL {
				return true
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		return false
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ps.Close()
	if !killed(base + "kill") {
		t.Error("after Close: the process that opened the path was not killed")
	}
	if killed(base + "unloaded") {
		t.Error("the unloaded policy still kills")
	}
	kept, err := kprobes.PinnedLinks(dir)
	if err != nil || len(kept) != 1 {
		t.Fatalf("pinned links: %v %v", kept, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := kprobes.WaitDetached(kept, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if killed(base + "kill") {
		t.Error("after its pins were removed, the policy still kills")
	}
}
