package kprobes

import (
	"fmt"
	"runtime"
	"strings"
)

// HookKind is a kind of hook a policy can ask for.
type HookKind string

const (
	HookKernelFunction HookKind = "kernel_function"
	HookSyscall        HookKind = "syscall"
	HookLSM            HookKind = "lsm_hook"
	HookTracepoint     HookKind = "tracepoint"
)

// HookKinds lists the hook kinds in report order.
var HookKinds = []HookKind{HookKernelFunction, HookSyscall, HookLSM, HookTracepoint}

// Action is what a policy does when a hook matches.
type Action string

const (
	ActionPost     Action = "post"
	ActionSigkill  Action = "sigkill"
	ActionOverride Action = "override"
)

// Actions lists the actions in report order.
var Actions = []Action{ActionPost, ActionSigkill, ActionOverride}

// Mechanism is how Vigil attaches a hook or takes an action on this kernel.
type Mechanism string

const (
	MechUnavailable    Mechanism = "unavailable"
	MechKprobe         Mechanism = "kprobe"
	MechKprobeMulti    Mechanism = "kprobe.multi"
	MechFentry         Mechanism = "fentry"
	MechFexit          Mechanism = "fexit"
	MechFmodRet        Mechanism = "fmod_ret"
	MechLSM            Mechanism = "lsm"
	MechTracepoint     Mechanism = "tracepoint"
	MechRawTracepoint  Mechanism = "raw_tracepoint"
	MechOverrideReturn Mechanism = "override_return"
	MechSendSignal     Mechanism = "send_signal"
)

// Plan is the mechanism chosen for one hook kind and action.
type Plan struct {
	Hook      HookKind  `json:"hook"`
	Action    Action    `json:"action"`
	Mechanism Mechanism `json:"mechanism"`
	// Detail qualifies the mechanism ("kprobe.multi when a policy hooks
	// several functions", "sys_enter_* tracepoints").
	Detail string `json:"detail,omitempty"`
	// Reason says why the hook or action is unavailable.
	Reason string `json:"reason,omitempty"`
}

// Available reports whether the plan has a mechanism.
func (p Plan) Available() bool { return p.Mechanism != MechUnavailable }

// Plan returns the mechanism for hook and action on this kernel.
func (f *Features) Plan(hook HookKind, action Action) Plan {
	for _, p := range f.Plans {
		if p.Hook == hook && p.Action == action {
			return p
		}
	}
	return Plan{Hook: hook, Action: action, Mechanism: MechUnavailable, Reason: "unknown hook kind or action"}
}

func planAll(f *Features) []Plan {
	var out []Plan
	for _, h := range HookKinds {
		for _, a := range Actions {
			p := decide(f, h, a)
			p.Hook, p.Action = h, a
			out = append(out, p)
		}
	}
	return out
}

// attachPlan picks how to observe a hook kind, in order of preference.
func attachPlan(f *Features, hook HookKind) Plan {
	switch hook {
	case HookKernelFunction, HookSyscall:
		// The same choice as PlanHook's, cheapest first (callMechanisms).
		one := f.callMechanisms(&HookRequest{Kind: hook, Targets: make([]HookTarget, 1)})
		if len(one) == 0 {
			if hook == HookSyscall {
				return unavailable("kernel has no kprobes, refuses fentry and has no syscall tracepoints")
			}
			return unavailable("kernel has no kprobes and refuses fentry programs")
		}
		p := Plan{Mechanism: one[0]}
		var details []string
		switch {
		case hook == HookSyscall && one[0] == MechTracepoint:
			details = append(details, "syscalls/sys_enter_* and sys_exit_*")
		case hook == HookSyscall:
			details = append(details, "on "+SyscallSymbol("*"))
		}
		many := f.callMechanisms(&HookRequest{Kind: hook, Targets: make([]HookTarget, MaxFentryTargets+1)})
		if many[0] != one[0] {
			what := "functions"
			if hook == HookSyscall {
				what = "syscalls"
			}
			details = append(details, fmt.Sprintf("%s when a policy hooks more than %d %s", many[0], MaxFentryTargets, what))
		}
		if len(one) > 1 {
			var rest []string
			for _, m := range one[1:] {
				rest = append(rest, string(m))
			}
			details = append(details, "cheapest of "+string(one[0])+", "+strings.Join(rest, ", "))
		}
		p.Detail = strings.Join(details, "; ")
		return p
	case HookLSM:
		switch {
		case f.Has(FeatureLSM):
			return Plan{Mechanism: MechLSM}
		case f.Has(FeatureFentry):
			return Plan{Mechanism: MechFentry, Detail: "on security_*"}
		case f.Has(FeatureKprobe):
			return Plan{Mechanism: MechKprobe, Detail: "on security_*"}
		}
		return unavailable(lsmReason(f) + ", and the kernel has neither fentry nor kprobes")
	case HookTracepoint:
		if f.Has(FeatureTracepoint) {
			return Plan{Mechanism: MechTracepoint}
		}
		return unavailable("tracepoints cannot be attached: " + f.Results[FeatureTracepoint].Error)
	}
	return unavailable("unknown hook kind")
}

func decide(f *Features, hook HookKind, action Action) Plan {
	attach := attachPlan(f, hook)
	switch action {
	case ActionPost:
		return attach
	case ActionSigkill:
		if !attach.Available() {
			return attach
		}
		if !f.Has(FeatureSendSignal) {
			return unavailable("bpf_send_signal is not available: " + f.Results[FeatureSendSignal].Error)
		}
		return Plan{Mechanism: MechSendSignal, Detail: "from the " + string(attach.Mechanism) + " program"}
	case ActionOverride:
		return overridePlan(f, hook)
	}
	return unavailable("unknown action")
}

func overridePlan(f *Features, hook HookKind) Plan {
	switch hook {
	case HookLSM:
		switch {
		case f.Has(FeatureLSM):
			return Plan{Mechanism: MechLSM, Detail: "the LSM program returns the error"}
		case f.Has(FeatureFmodRet):
			return Plan{Mechanism: MechFmodRet, Detail: "on security_*"}
		}
		return unavailable(lsmReason(f) + ", and fmod_ret is refused")
	case HookKernelFunction:
		switch {
		case f.Has(FeatureFmodRet):
			return Plan{Mechanism: MechFmodRet, Detail: "security_* and error-injectable functions"}
		case f.Has(FeatureOverrideReturn) && f.Has(FeatureKprobe):
			return Plan{Mechanism: MechOverrideReturn, Detail: "error-injectable functions"}
		}
		return unavailable("kernel refuses fmod_ret and has no bpf_override_return (CONFIG_BPF_KPROBE_OVERRIDE); use an LSM hook")
	case HookSyscall:
		switch {
		case f.Has(FeatureFmodRetSyscall):
			return Plan{Mechanism: MechFmodRet, Detail: "on " + SyscallSymbol("*")}
		case f.Has(FeatureOverrideReturn) && f.Has(FeatureKprobe):
			return Plan{Mechanism: MechOverrideReturn, Detail: "on " + SyscallSymbol("*")}
		}
		return unavailable("kernel refuses fmod_ret on syscalls and has no bpf_override_return (CONFIG_BPF_KPROBE_OVERRIDE); use an LSM hook such as file_open instead")
	case HookTracepoint:
		return unavailable("a tracepoint cannot change the result of a call; use Sigkill or an LSM hook")
	}
	return unavailable("unknown hook kind")
}

func unavailable(reason string) Plan {
	return Plan{Mechanism: MechUnavailable, Reason: reason}
}

func lsmReason(f *Features) string {
	if !f.Kernel.Securityfs {
		return "BPF LSM state unknown (securityfs not mounted)"
	}
	if !f.Kernel.BPFLSM {
		return "bpf is not an active LSM (active: " + strings.Join(f.Kernel.LSMs, ",") + "; boot with lsm=...,bpf)"
	}
	return "BPF LSM programs are refused (" + f.Results[FeatureLSM].Error + ")"
}

// SyscallSymbol returns the kernel symbol of a syscall's entry point on this
// architecture, for example __x64_sys_openat.
func SyscallSymbol(name string) string {
	return syscallPrefix() + name
}

func syscallPrefix() string {
	switch runtime.GOARCH {
	case "arm64":
		return "__arm64_sys_"
	case "s390x":
		return "__s390x_sys_"
	default:
		return "__x64_sys_"
	}
}
