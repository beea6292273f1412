package kprobes_test

import (
	"testing"

	"github.com/vigilsec/vigil/internal/kerneltest"
	. "github.com/vigilsec/vigil/kprobes"
)

// Every variant of the generic program verifies and attaches where the
// kernel has its mechanism: the verifier of each kernel has its own limits.
func TestPrivGenericPrograms(t *testing.T) {
	f := kerneltest.Features(t)
	ps, err := NewProcessSensor(nil, f)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	g, err := NewGenericSensor(ps, f)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, tc := range []struct {
		name    string
		feature Feature
		req     HookRequest
	}{
		{"tracepoint", FeatureTracepoint, HookRequest{Kind: HookTracepoint, Targets: []HookTarget{{ID: 1, Name: "syscalls/sys_enter_getpid"}}}},
		{"kprobe", FeatureKprobe, HookRequest{Kind: HookKernelFunction, Targets: []HookTarget{{ID: 2, Name: "vfs_read"}}}},
		{"kretprobe", FeatureKretprobe, HookRequest{Kind: HookKernelFunction, Return: true, Targets: []HookTarget{{ID: 3, Name: "vfs_read"}}}},
		{"kprobe.multi", FeatureKprobeMulti, HookRequest{Kind: HookKernelFunction, Targets: []HookTarget{{ID: 4, Name: "vfs_read"}, {ID: 5, Name: "vfs_write"}}}},
		{"fentry syscall", FeatureFentry, HookRequest{Kind: HookSyscall, Targets: []HookTarget{{ID: 6, Name: "getpid"}}}},
		{"lsm", FeatureLSM, HookRequest{Kind: HookLSM, Targets: []HookTarget{{ID: 7, Name: "file_open"}}}},
		{"fmod_ret", FeatureFmodRet, HookRequest{Kind: HookKernelFunction, Override: true, Targets: []HookTarget{{ID: 8, Name: "security_file_open"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kerneltest.SkipIfNotSupported(t, tc.feature)
			a, err := g.Attach(&tc.req)
			if err != nil {
				t.Fatalf("%+v", err)
			}
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
