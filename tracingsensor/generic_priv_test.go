package tracingsensor

import (
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
	g, err := newGeneric(ps, f)
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
		{"fentry syscall", kprobes.FeatureFentry, kprobes.HookRequest{Kind: kprobes.HookSyscall, Targets: []kprobes.HookTarget{{ID: 6, Name: "getpid"}}}},
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
