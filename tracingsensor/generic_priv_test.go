package tracingsensor

import (
	"strings"
	"testing"

	"github.com/vigilsec/vigil/internal/kerneltest"
	"github.com/vigilsec/vigil/kprobes"
	"github.com/vigilsec/vigil/process"
)

// Every variant of the generic program verifies and attaches where the
// kernel has its mechanism: the verifier of each kernel has its own limits.
func TestPrivGenericPrograms(t *testing.T) {
	f := kerneltest.Features(t)
	ps, err := process.NewSensor(nil, f)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	g, err := newGeneric(ps, f, 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	for _, tc := range []struct {
		name    string
		feature kprobes.Feature
		req     kprobes.HookRequest
	}{
		{"tracepoint", kprobes.FeatureTracepoint, kprobes.HookRequest{Kind: kprobes.HookTracepoint, Targets: []kprobes.HookTarget{{ID: 1, Name: "syscalls/sys_enter_getpid"}}}},
		{"kprobe", kprobes.FeatureKprobe, kprobes.HookRequest{Kind: kprobes.HookKernelFunction, Targets: []kprobes.HookTarget{{ID: 2, Name: "vfs_read"}}}},
		{"kretprobe", kprobes.FeatureKretprobe, kprobes.HookRequest{Kind: kprobes.HookKernelFunction, Return: true, Targets: []kprobes.HookTarget{{ID: 3, Name: "vfs_read"}}}},
		{"kprobe.multi", kprobes.FeatureKprobeMulti, kprobes.HookRequest{Kind: kprobes.HookKernelFunction, Targets: []kprobes.HookTarget{{ID: 4, Name: "vfs_read"}, {ID: 5, Name: "vfs_write"}}}},
		{"fentry syscall", kprobes.FeatureFentry, kprobes.HookRequest{Kind: kprobes.HookSyscall, Mechanism: kprobes.MechFentry, Targets: []kprobes.HookTarget{{ID: 6, Name: "openat"}}}},
		{"lsm", kprobes.FeatureLSM, kprobes.HookRequest{Kind: kprobes.HookLSM, Targets: []kprobes.HookTarget{{ID: 7, Name: "file_open"}}}},
		{"fmod_ret", kprobes.FeatureFmodRet, kprobes.HookRequest{Kind: kprobes.HookKernelFunction, Override: true, Targets: []kprobes.HookTarget{{ID: 8, Name: "security_file_open"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kerneltest.SkipIfNotSupported(t, tc.feature)
			a, err := g.attach(&tc.req)
			if err != nil {
				t.Fatalf("%+v", err)
			}
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A syscall whose wrapper the kernel's BTF lacks (getpid's, on Debian's
// kernels) or names twice is served by the next cheapest mechanism rather
// than refused; forced onto fentry, it is refused with the reason.
func TestPrivPlanFallsBackWithoutBTF(t *testing.T) {
	f := kerneltest.Features(t)
	kerneltest.SkipIfNotSupported(t, kprobes.FeatureFentry)
	ps, err := process.NewSensor(nil, f)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	g, err := newGeneric(ps, f, 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	var missing string
	for _, name := range []string{"getpid", "getppid", "sync", "vhangup", "socket", "setuid"} {
		if g.btfTargets(&kprobes.HookRequest{Kind: kprobes.HookSyscall, Targets: []kprobes.HookTarget{{Name: name}}}) != nil {
			missing = name
			break
		}
	}
	if missing == "" {
		kerneltest.Skip(t, "every candidate syscall has one function in this kernel's BTF")
	}
	req := kprobes.HookRequest{Kind: kprobes.HookSyscall, Targets: []kprobes.HookTarget{{ID: 9, Name: missing}}}
	mech, _, err := g.plan(&req)
	if err != nil {
		t.Fatalf("%s: %v", missing, err)
	}
	if kprobes.BTFMechanism(mech) {
		t.Fatalf("%s planned on %s, which needs its BTF", missing, mech)
	}
	a, err := g.attach(&req)
	if err != nil {
		t.Fatalf("%s on %s: %v", missing, mech, err)
	}
	a.Close()
	forced := kprobes.HookRequest{Kind: kprobes.HookSyscall, Mechanism: kprobes.MechFentry, Targets: []kprobes.HookTarget{{ID: 9, Name: missing}}}
	if _, _, err := g.plan(&forced); err == nil || !strings.Contains(err.Error(), "BTF") {
		t.Errorf("%s forced onto fentry: %v, want a refusal naming the BTF", missing, err)
	}
}
