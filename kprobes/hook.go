package kprobes

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// HookTarget is one function (or LSM hook, or tracepoint) of a hook, with
// the id its configuration is stored under.
type HookTarget struct {
	ID uint32
	// Name is a kernel function name (HookKernelFunction), a syscall name
	// without prefix (HookSyscall), an LSM hook name (HookLSM) or
	// "subsystem/event" (HookTracepoint).
	Name string
}

// HookRequest is one hook to attach, as the policy compiler resolved it.
type HookRequest struct {
	Kind    HookKind
	Targets []HookTarget
	// Return asks for the call to be reported at its return.
	Return bool
	// Override asks for the ability to change the call's result.
	Override bool
	// Mechanism, when set, asks for that mechanism rather than the one
	// PlanHook prefers, to measure them side by side; it is refused when
	// it cannot serve the hook on this kernel.
	Mechanism Mechanism
	// Exclude are mechanisms found unable to serve these targets (a
	// function the kernel's BTF lacks, or names twice, has no fentry);
	// PlanHook picks among the others.
	Exclude []Mechanism
}

// excluded reports whether m is among r.Exclude.
func (r *HookRequest) excluded(m Mechanism) bool { return slices.Contains(r.Exclude, m) }

// BTFMechanism reports whether m attaches through the kernel's BTF of the
// target function (a trampoline), so that the function must be in it once.
func BTFMechanism(m Mechanism) bool {
	switch m {
	case MechFentry, MechFexit, MechFmodRet:
		return true
	}
	return false
}

// ErrCannotAttach says that no mechanism of this kernel can serve a hook.
var ErrCannotAttach = errors.New("cannot attach")

type attachError struct {
	msg string
}

func (e *attachError) Error() string        { return e.msg }
func (e *attachError) Is(target error) bool { return target == ErrCannotAttach }

func cannot(format string, args ...any) error {
	return &attachError{msg: fmt.Sprintf(format, args...)}
}

// MaxFentryTargets is the most functions one hook attaches fentry programs
// to; a hook of more uses kprobe.multi where the kernel has it.
const MaxFentryTargets = 8

// callMechanisms lists the mechanisms that can report calls of a kernel
// function or syscall req names, cheapest first, as BenchmarkPrivSyscallCost
// measured them (docs/benchmarks.md): fentry and fexit (a direct call from
// the function's trampoline) before kprobes (an ftrace callback and the
// kprobe handler), kprobe.multi for several functions at once (one link,
// one program), and for syscalls last the syscall tracepoints (every
// syscall of every task then takes the traced slow path, and each hooked
// call builds a perf record).
func (f *Features) callMechanisms(req *HookRequest) []Mechanism {
	var out []Mechanism
	if req.Return {
		if f.Has(FeatureFexit) {
			out = append(out, MechFexit)
		}
		if f.Has(FeatureKretprobe) {
			out = append(out, MechKprobe)
		}
	} else {
		multi := f.Has(FeatureKprobe) && f.Has(FeatureKprobeMulti) && len(req.Targets) > 1
		// Many functions: one kprobe.multi program and link rather than
		// a verified program and a trampoline per function.
		if multi && len(req.Targets) > MaxFentryTargets {
			out = append(out, MechKprobeMulti)
		}
		if f.Has(FeatureFentry) {
			out = append(out, MechFentry)
		}
		if multi && len(req.Targets) <= MaxFentryTargets {
			out = append(out, MechKprobeMulti)
		}
		if f.Has(FeatureKprobe) {
			out = append(out, MechKprobe)
		}
	}
	if req.Kind == HookSyscall && f.Has(FeatureTracepoint) {
		out = append(out, MechTracepoint)
	}
	return slices.DeleteFunc(out, req.excluded)
}

// SyscallMechanisms lists the mechanisms that can report a syscall's entry
// on this kernel, cheapest first (the first is the one PlanHook uses).
func (f *Features) SyscallMechanisms() []Mechanism {
	return f.callMechanisms(&HookRequest{Kind: HookSyscall, Targets: make([]HookTarget, 1)})
}

// PlanHook returns the mechanism that serves req on this kernel, or an
// error matching ErrCannotAttach that says why none does. It loads nothing.
func (f *Features) PlanHook(req *HookRequest) (Mechanism, error) {
	switch req.Kind {
	case HookLSM:
		switch {
		case f.Has(FeatureLSM):
			return MechLSM, nil
		case req.Override && f.Has(FeatureFmodRet):
			return MechFmodRet, nil
		case req.Override:
			return "", cannot("LSM hook %s: Override needs BPF LSM or fmod_ret, and this kernel has neither (%s)", req.Targets[0].Name, lsmReason(f))
		case f.Has(FeatureFentry):
			return MechFentry, nil
		case f.Has(FeatureKprobe):
			return MechKprobe, nil
		}
		return "", cannot("LSM hook %s: %s, and this kernel has neither fentry nor kprobes", req.Targets[0].Name, lsmReason(f))
	case HookKernelFunction, HookSyscall:
		what := "kernel function " + req.names()
		if req.Kind == HookSyscall {
			what = "syscall " + req.names()
		}
		if req.Override {
			fmodOK := f.Has(FeatureFmodRet)
			if req.Kind == HookSyscall {
				fmodOK = f.Has(FeatureFmodRetSyscall)
			}
			switch {
			case fmodOK && !req.excluded(MechFmodRet):
				return MechFmodRet, nil
			case f.Has(FeatureOverrideReturn) && f.Has(FeatureKprobe):
				return MechOverrideReturn, nil
			}
			hint := "use an LSM hook instead"
			if req.Kind == HookSyscall {
				hint = lsmSuggestion(req.names())
			}
			return "", cannot("%s: Override needs fmod_ret or bpf_override_return (CONFIG_BPF_KPROBE_OVERRIDE) and this kernel has neither; %s", what, hint)
		}
		if c := f.callMechanisms(req); len(c) > 0 {
			if req.Mechanism == "" {
				return c[0], nil
			}
			for _, m := range c {
				if m == req.Mechanism {
					return m, nil
				}
			}
			return "", cannot("%s: %s cannot serve it on this kernel (it can use %v)", what, req.Mechanism, c)
		}
		if req.Kind == HookSyscall {
			return "", cannot("%s: this kernel has no kprobes, refuses fentry and has no syscall tracepoints", what)
		}
		return "", cannot("%s: this kernel has no kprobes and refuses fentry programs (kernel functions need one of them; syscalls and tracepoints do not)", what)
	case HookTracepoint:
		if req.Override {
			return "", cannot("tracepoint %s: a tracepoint cannot change the result of a call; use Sigkill or an LSM hook", req.Targets[0].Name)
		}
		if req.Mechanism == MechRawTracepoint {
			if !f.Has(FeatureRawTracepoint) {
				return "", cannot("raw tracepoint %s: %s", req.Targets[0].Name, f.Results[FeatureRawTracepoint].Error)
			}
			return MechRawTracepoint, nil
		}
		if !f.Has(FeatureTracepoint) {
			return "", cannot("tracepoint %s: %s", req.Targets[0].Name, f.Results[FeatureTracepoint].Error)
		}
		return MechTracepoint, nil
	}
	return "", fmt.Errorf("unknown hook kind %q", req.Kind)
}

func (r *HookRequest) names() string {
	names := make([]string, len(r.Targets))
	for i, t := range r.Targets {
		names[i] = t.Name
	}
	return strings.Join(names, ", ")
}

// lsmSuggestion names LSM hooks that serve the same purpose as syscalls.
func lsmSuggestion(syscalls string) string {
	for _, s := range strings.Split(syscalls, ", ") {
		switch s {
		case "open", "openat", "openat2", "creat":
			return "use the LSM hook file_open instead of sys_" + s
		case "execve", "execveat":
			return "use the LSM hook bprm_check_security instead of sys_" + s
		case "mkdir", "mkdirat":
			return "use the LSM hook path_mkdir (or inode_mkdir) instead of sys_" + s
		case "unlink", "unlinkat":
			return "use the LSM hook path_unlink instead of sys_" + s
		case "connect":
			return "use the LSM hook socket_connect instead of sys_connect"
		case "init_module", "finit_module":
			return "use the LSM hook kernel_read_file or kernel_module_request instead of sys_" + s
		case "ptrace":
			return "use the LSM hook ptrace_access_check instead of sys_ptrace"
		case "bpf":
			return "use the LSM hook bpf instead of sys_bpf"
		case "unshare", "clone", "clone3", "setns":
			return "use the LSM hook userns_create (6.1+) instead of sys_" + s
		}
	}
	return "use an LSM hook instead"
}

// SymbolFor returns the kernel symbol for a target: the LSM's security_
// function when an LSM hook falls back to fentry or kprobes, the syscall's
// entry point for syscalls.
func SymbolFor(req *HookRequest, target string) string {
	switch req.Kind {
	case HookSyscall:
		return SyscallSymbol(target)
	case HookLSM:
		return "security_" + target
	}
	return target
}
