package kprobes

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// probed builds a probe result in which exactly the listed features work.
func probed(k KernelInfo, ok ...Feature) *Features {
	f := &Features{Kernel: k, Results: map[Feature]Result{}}
	for _, feat := range AllFeatures {
		f.Results[feat] = Result{Error: "probe of " + string(feat) + " failed"}
	}
	for _, feat := range ok {
		f.Results[feat] = Result{OK: true}
	}
	f.Plans = planAll(f)
	return f
}

var (
	basics = []Feature{FeatureTracepoint, FeatureTpBTF, FeatureRawTracepoint, FeatureCgroupConnect4, FeatureCgroupSendmsg4, FeatureCgroupSKB, FeatureRingbuf, FeatureSendSignal, FeatureBPFStats}
	// Debian's kernels lack CONFIG_FUNCTION_ERROR_INJECTION: fmod_ret works
	// on security_* only, not on syscalls.
	debian61   = append([]Feature{FeatureKprobe, FeatureKretprobe, FeatureFentry, FeatureFexit, FeatureFmodRet, FeatureLSM}, basics...)
	debian612  = append([]Feature{FeatureKprobeMulti}, debian61...)
	withBPF    = KernelInfo{Securityfs: true, LSMs: []string{"lockdown", "capability", "bpf"}, BPFLSM: true}
	withoutBPF = KernelInfo{Securityfs: true, LSMs: []string{"lockdown", "capability", "apparmor"}}
)

func mechanisms(f *Features) map[string]Mechanism {
	out := map[string]Mechanism{}
	for _, p := range f.Plans {
		out[string(p.Hook)+"/"+string(p.Action)] = p.Mechanism
	}
	return out
}

// plans lists mechanisms in HookKinds x Actions order (post, sigkill,
// override per hook kind).
func plans(m ...Mechanism) map[string]Mechanism {
	out := map[string]Mechanism{}
	i := 0
	for _, h := range HookKinds {
		for _, a := range Actions {
			out[string(h)+"/"+string(a)] = m[i]
			i++
		}
	}
	return out
}

const (
	none = MechUnavailable
	sig  = MechSendSignal
)

func TestPlans(t *testing.T) {
	tests := []struct {
		name string
		f    *Features
		want map[string]Mechanism
		// substrings of the detail (available) or reason (unavailable)
		// of some plans
		explain map[string]string
	}{
		{
			name: "host 6.18: tracepoints only",
			f:    probed(withoutBPF, basics...),
			want: plans(
				none, none, none, // kernel_function
				MechTracepoint, sig, none, // syscall
				none, none, none, // lsm_hook
				MechTracepoint, sig, none), // tracepoint
			explain: map[string]string{
				"syscall/post":             "syscalls/sys_enter_* and sys_exit_*",
				"syscall/override":         "CONFIG_BPF_KPROBE_OVERRIDE",
				"lsm_hook/override":        "bpf is not an active LSM (active: lockdown,capability,apparmor; boot with lsm=...,bpf), and fmod_ret is refused",
				"kernel_function/post":     "kernel has no kprobes and refuses fentry programs",
				"kernel_function/override": "use an LSM hook",
				"tracepoint/override":      "a tracepoint cannot change the result of a call",
			},
		},
		{
			name: "Debian 6.1",
			f:    probed(withBPF, debian61...),
			want: plans(
				MechFentry, sig, MechFmodRet,
				MechFentry, sig, none,
				MechLSM, sig, MechLSM,
				MechTracepoint, sig, none),
			explain: map[string]string{
				"syscall/post":      "on __x64_sys_*; cheapest of fentry, kprobe, tracepoint",
				"lsm_hook/override": "the LSM program returns the error",
				"lsm_hook/sigkill":  "from the lsm program",
				"syscall/override":  "use an LSM hook such as file_open instead",
			},
		},
		{
			name: "Debian 6.12",
			f:    probed(withBPF, debian612...),
			want: plans(
				MechFentry, sig, MechFmodRet,
				MechFentry, sig, none,
				MechLSM, sig, MechLSM,
				MechTracepoint, sig, none),
			explain: map[string]string{
				"kernel_function/post": "kprobe.multi when a policy hooks more than 8 functions",
				"syscall/post":         "kprobe.multi when a policy hooks more than 8 syscalls",
			},
		},
		{
			name: "fmod_ret on syscalls (CONFIG_FUNCTION_ERROR_INJECTION)",
			f:    probed(withBPF, append([]Feature{FeatureFmodRetSyscall}, debian61...)...),
			want: plans(
				MechFentry, sig, MechFmodRet,
				MechFentry, sig, MechFmodRet,
				MechLSM, sig, MechLSM,
				MechTracepoint, sig, none),
			explain: map[string]string{"syscall/override": "on __x64_sys_*"},
		},
		{
			name: "kprobes with bpf_override_return, no LSM, no fmod_ret",
			f:    probed(withoutBPF, append([]Feature{FeatureKprobe, FeatureOverrideReturn}, basics...)...),
			want: plans(
				MechKprobe, sig, MechOverrideReturn,
				MechKprobe, sig, MechOverrideReturn,
				MechKprobe, sig, none,
				MechTracepoint, sig, none),
			explain: map[string]string{"lsm_hook/post": "on security_*"},
		},
		{
			name: "fentry and fmod_ret without kprobes or LSM",
			f:    probed(withoutBPF, append([]Feature{FeatureFentry, FeatureFexit, FeatureFmodRet}, basics...)...),
			want: plans(
				MechFentry, sig, MechFmodRet,
				MechFentry, sig, none,
				MechFentry, sig, MechFmodRet,
				MechTracepoint, sig, none),
			explain: map[string]string{"lsm_hook/override": "on security_*"},
		},
		{
			name: "nothing works, securityfs not mounted",
			f:    probed(KernelInfo{}),
			want: plans(none, none, none, none, none, none, none, none, none, none, none, none),
			explain: map[string]string{
				"lsm_hook/post":      "BPF LSM state unknown (securityfs not mounted)",
				"tracepoint/post":    "tracepoints cannot be attached: probe of tracepoint failed",
				"syscall/post":       "no syscall tracepoints",
				"tracepoint/sigkill": "tracepoints cannot be attached",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, mechanisms(tt.f)); diff != "" {
				t.Errorf("mechanisms (-want +got):\n%s", diff)
			}
			for key, want := range tt.explain {
				hook, action, _ := strings.Cut(key, "/")
				p := tt.f.Plan(HookKind(hook), Action(action))
				text := p.Detail
				if !p.Available() {
					text = p.Reason
				}
				if !strings.Contains(text, want) {
					t.Errorf("%s: %q lacks %q", key, text, want)
				}
			}
		})
	}
}

func TestPlanUnknown(t *testing.T) {
	f := probed(withBPF, debian61...)
	if p := f.Plan("uprobe", ActionPost); p.Available() || p.Reason == "" {
		t.Errorf("Plan(uprobe) = %+v, want unavailable with a reason", p)
	}
}
