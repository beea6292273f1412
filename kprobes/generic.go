package kprobes

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
)

// Layouts of the tracing-policy maps and records, generated from
// bpf/lib/generic.h.
type (
	GenHook       = GenericGenHook
	GenArgDesc    = GenericGenArgDesc
	GenSelector   = GenericGenSelector
	GenArgFilter  = GenericGenArgFilter
	GenBinFilter  = GenericGenBinFilter
	GenPIDFilter  = GenericGenPidFilter
	GenNSFilter   = GenericGenNsFilter
	GenCapFilter  = GenericGenCapFilter
	GenPolicy     = GenericGenPolicy
	GenIntKey     = GenericGenIntKey
	GenStrKey     = GenericGenStrKey
	GenAddrKey    = GenericGenAddrKey
	GenPortKey    = GenericGenPortKey
	GenScopeKey   = GenericGenScopeKey
	GenEvent      = GenericGenEvent
	GenFileArg    = GenericGenFileArg
	GenSockArg    = GenericGenSockArg
	GenCredArg    = GenericGenCredArg
	GenHookStats  = GenericGenHookStats
	GenArgType    = GenericGenArgType
	GenArgFlags   = GenericGenArgFlags
	GenHookFlags  = GenericGenHookFlags
	GenOp         = GenericGenOp
	GenBinOp      = GenericGenBinOp
	GenNS         = GenericGenNs
	GenCapSet     = GenericGenCapSet
	GenAction     = GenericGenAction
	GenPolicyMode = GenericGenPolicyMode
	GenEventFlags = GenericGenEventFlags
	GenArgState   = GenericGenArgState
)

// Limits of the compiled form, from bpf/lib/generic.h.
const (
	GenMaxHooks     = 1024
	GenMaxPolicies  = 1024
	GenMaxSelectors = 5
	GenArgReturn    = 0xff
	GenStrMax       = len(GenStrKey{}.Data)
)

// GenericSensor holds the maps shared by every tracing-policy program and
// attaches one program (or one kprobe.multi link) per hook.
type GenericSensor struct {
	spec *ebpf.CollectionSpec
	maps map[string]*ebpf.Map
	// owned are the maps this sensor created (the others belong to the
	// process sensor).
	owned    []*ebpf.Map
	features *Features
	agentPID uint32

	kernelOnce sync.Once
	kernel     *btf.Spec
	kernelErr  error
}

// sharedWithProcess are the maps of the generic object that must be the
// process sensor's own: one ring buffer for every record, one process table.
var sharedWithProcess = []string{"events", "lost_counters", "procs", "path_scratch_map"}

// NewGenericSensor creates the tracing-policy maps. Programs are loaded by
// Attach, one hook at a time.
func NewGenericSensor(proc *ProcessSensor, f *Features) (_ *GenericSensor, err error) {
	spec, err := LoadGeneric()
	if err != nil {
		return nil, fmt.Errorf("load generic object: %w", err)
	}
	g := &GenericSensor{spec: spec, maps: map[string]*ebpf.Map{}, features: f, agentPID: uint32(os.Getpid())}
	defer func() {
		if err != nil {
			g.Close()
		}
	}()
	for _, name := range sharedWithProcess {
		m := proc.coll.Maps[name]
		if m == nil {
			return nil, fmt.Errorf("process sensor has no map %s", name)
		}
		g.maps[name] = m
	}
	for name, ms := range spec.Maps {
		if _, ok := g.maps[name]; ok || strings.HasPrefix(name, ".") {
			continue
		}
		m, err := ebpf.NewMap(ms)
		if err != nil {
			return nil, fmt.Errorf("create map %s: %w", name, err)
		}
		g.maps[name] = m
		g.owned = append(g.owned, m)
	}
	return g, nil
}

// Map returns one of the shared maps by its name in bpf/generic.bpf.c.
func (g *GenericSensor) Map(name string) *ebpf.Map { return g.maps[name] }

// Close releases the maps. Attachments must be closed first.
func (g *GenericSensor) Close() error {
	for _, m := range g.owned {
		m.Close()
	}
	g.owned = nil
	return nil
}

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
}

// Attachment is the programs and links serving one hook.
type Attachment struct {
	Mechanism Mechanism
	// Flags are the GenHookFlags the mechanism needs set in the hook's
	// configuration.
	Flags  uint32
	progs  []*ebpf.Program
	links  []link.Link
	closed bool
}

// Close detaches and unloads the hook's programs.
func (a *Attachment) Close() error {
	if a == nil || a.closed {
		return nil
	}
	a.closed = true
	var errs []error
	for _, l := range a.links {
		errs = append(errs, l.Close())
	}
	for _, p := range a.progs {
		errs = append(errs, p.Close())
	}
	return errors.Join(errs...)
}

// Programs returns the loaded programs (for statistics).
func (a *Attachment) Programs() []*ebpf.Program { return a.progs }

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

// Plan returns the mechanism Attach would use for req, and the hook flags it
// needs, without loading anything.
func (g *GenericSensor) Plan(req *HookRequest) (Mechanism, uint32, error) {
	f := g.features
	var flags uint32
	switch req.Kind {
	case HookLSM:
		switch {
		case f.Has(FeatureLSM):
			return MechLSM, 0, nil
		case req.Override && f.Has(FeatureFmodRet):
			return MechFmodRet, 0, nil
		case req.Override:
			return "", 0, cannot("LSM hook %s: Override needs BPF LSM or fmod_ret, and this kernel has neither (%s)", req.Targets[0].Name, lsmReason(f))
		case f.Has(FeatureFentry):
			return MechFentry, 0, nil
		case f.Has(FeatureKprobe):
			return MechKprobe, 0, nil
		}
		return "", 0, cannot("LSM hook %s: %s, and this kernel has neither fentry nor kprobes", req.Targets[0].Name, lsmReason(f))
	case HookKernelFunction, HookSyscall:
		if req.Kind == HookSyscall {
			flags |= uint32(GenericGenHookFlagsGEN_HOOK_SYSCALL)
		}
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
			case fmodOK:
				return MechFmodRet, flags | g.wrapFlag(req), nil
			case f.Has(FeatureOverrideReturn) && f.Has(FeatureKprobe):
				return MechOverrideReturn, flags | g.wrapFlag(req), nil
			}
			hint := "use an LSM hook instead"
			if req.Kind == HookSyscall {
				hint = lsmSuggestion(req.names())
			}
			return "", 0, cannot("%s: Override needs fmod_ret or bpf_override_return (CONFIG_BPF_KPROBE_OVERRIDE) and this kernel has neither; %s", what, hint)
		}
		switch {
		case req.Return && f.Has(FeatureFexit):
			return MechFexit, flags | g.wrapFlag(req), nil
		case req.Return && f.Has(FeatureKretprobe):
			return MechKprobe, flags | g.wrapFlag(req), nil
		case !req.Return && f.Has(FeatureKprobe) && f.Has(FeatureKprobeMulti) && len(req.Targets) > 1:
			return MechKprobeMulti, flags | g.wrapFlag(req), nil
		case !req.Return && f.Has(FeatureKprobe):
			return MechKprobe, flags | g.wrapFlag(req), nil
		case !req.Return && f.Has(FeatureFentry):
			return MechFentry, flags | g.wrapFlag(req), nil
		case req.Kind == HookSyscall && f.Has(FeatureTracepoint):
			return MechTracepoint, flags | uint32(GenericGenHookFlagsGEN_HOOK_TP_SYSCALL), nil
		}
		if req.Kind == HookSyscall {
			return "", 0, cannot("%s: this kernel has no kprobes, refuses fentry and has no syscall tracepoints", what)
		}
		return "", 0, cannot("%s: this kernel has no kprobes and refuses fentry programs (kernel functions need one of them; syscalls and tracepoints do not)", what)
	case HookTracepoint:
		if req.Override {
			return "", 0, cannot("tracepoint %s: a tracepoint cannot change the result of a call; use Sigkill or an LSM hook", req.Targets[0].Name)
		}
		if !f.Has(FeatureTracepoint) {
			return "", 0, cannot("tracepoint %s: %s", req.Targets[0].Name, f.Results[FeatureTracepoint].Error)
		}
		return MechTracepoint, flags | uint32(GenericGenHookFlagsGEN_HOOK_TRACEPOINT), nil
	}
	return "", 0, fmt.Errorf("unknown hook kind %q", req.Kind)
}

func (g *GenericSensor) wrapFlag(req *HookRequest) uint32 {
	if req.Kind == HookSyscall {
		return uint32(GenericGenHookFlagsGEN_HOOK_WRAPPED_REGS)
	}
	return 0
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

// Attach loads and attaches the programs serving req. The hook's
// configuration must already be in the gen_hooks map, with the flags Plan
// returned.
func (g *GenericSensor) Attach(req *HookRequest) (_ *Attachment, err error) {
	mech, flags, err := g.Plan(req)
	if err != nil {
		return nil, err
	}
	a := &Attachment{Mechanism: mech, Flags: flags}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	switch mech {
	case MechLSM:
		for _, t := range req.Targets {
			if err = g.attachBTF(a, t.ID, "generic_lsm", ebpf.AttachLSMMac, t.Name); err != nil {
				break
			}
		}
	case MechFentry, MechFexit, MechFmodRet:
		prog, at := "generic_fentry", ebpf.AttachTraceFEntry
		if mech == MechFexit {
			prog, at = "generic_fexit", ebpf.AttachTraceFExit
		} else if mech == MechFmodRet {
			prog, at = "generic_fmod_ret", ebpf.AttachModifyReturn
		}
		for _, t := range req.Targets {
			if err = g.attachBTF(a, t.ID, prog, at, symbolFor(req, t.Name)); err != nil {
				break
			}
		}
	case MechKprobeMulti:
		err = g.attachKprobeMulti(a, req)
	case MechKprobe:
		for _, t := range req.Targets {
			if err = g.attachKprobe(a, t.ID, symbolFor(req, t.Name), false); err != nil {
				break
			}
			if req.Return {
				if err = g.attachKprobe(a, t.ID, symbolFor(req, t.Name), true); err != nil {
					break
				}
			}
		}
	case MechTracepoint:
		err = g.attachTracepoints(a, req)
	case MechOverrideReturn:
		err = cannot("bpf_override_return is not implemented by this build")
	default:
		err = fmt.Errorf("mechanism %s not handled", mech)
	}
	if err != nil {
		return nil, err
	}
	return a, nil
}

// symbolFor returns the kernel symbol for a target: the LSM's security_
// function when an LSM hook falls back to fentry or kprobes, the syscall's
// entry point for syscalls.
func symbolFor(req *HookRequest, target string) string {
	switch req.Kind {
	case HookSyscall:
		return SyscallSymbol(target)
	case HookLSM:
		return "security_" + target
	}
	return target
}

// loadOne loads program name of the generic object for one hook.
func (g *GenericSensor) loadOne(name string, hookID, nparams uint32, fix func(*ebpf.ProgramSpec)) (*ebpf.Program, error) {
	spec := g.spec.Copy()
	ps := spec.Programs[name]
	if ps == nil {
		return nil, fmt.Errorf("no program %s", name)
	}
	if fix != nil {
		fix(ps)
	}
	for n := range spec.Programs {
		if n != name {
			delete(spec.Programs, n)
		}
	}
	for _, v := range []struct {
		name string
		val  uint32
	}{{"hook_id", hookID}, {"nparams", nparams}, {"agent_tgid", g.agentPID}} {
		if err := spec.Variables[v.name].Set(v.val); err != nil {
			return nil, fmt.Errorf("set %s: %w", v.name, err)
		}
	}
	repl := make(map[string]*ebpf.Map, len(g.maps))
	for n, m := range g.maps {
		repl[n] = m
		// Maps shared with the process sensor are sized by its options.
		if ms := spec.Maps[n]; ms != nil {
			ms.MaxEntries = m.MaxEntries()
		}
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: repl})
	if err != nil {
		return nil, verifierHint(err)
	}
	prog := coll.DetachProgram(name)
	coll.Close()
	return prog, nil
}

func (g *GenericSensor) kernelSpec() (*btf.Spec, error) {
	g.kernelOnce.Do(func() { g.kernel, g.kernelErr = btf.LoadKernelSpec() })
	return g.kernel, g.kernelErr
}

// funcParams returns the number of parameters of a kernel function.
func (g *GenericSensor) funcParams(symbol string) (uint32, error) {
	spec, err := g.kernelSpec()
	if err != nil {
		return 0, fmt.Errorf("kernel BTF: %w", err)
	}
	var fn *btf.Func
	if err := spec.TypeByName(symbol, &fn); err != nil {
		return 0, fmt.Errorf("%s: no such function in the kernel's BTF: %w", symbol, err)
	}
	proto, ok := fn.Type.(*btf.FuncProto)
	if !ok {
		return 0, fmt.Errorf("%s: not a function prototype", symbol)
	}
	return uint32(len(proto.Params)), nil
}

func (g *GenericSensor) attachBTF(a *Attachment, id uint32, prog string, at ebpf.AttachType, target string) error {
	fnName := target
	if at == ebpf.AttachLSMMac {
		fnName = "bpf_lsm_" + target
	}
	n, err := g.funcParams(fnName)
	if err != nil {
		return err
	}
	p, err := g.loadOne(prog, id, n, func(ps *ebpf.ProgramSpec) {
		ps.AttachTo = target
		ps.AttachType = at
	})
	if err != nil {
		return fmt.Errorf("load %s program for %s: %w", at, target, err)
	}
	a.progs = append(a.progs, p)
	var l link.Link
	if at == ebpf.AttachLSMMac {
		l, err = link.AttachLSM(link.LSMOptions{Program: p})
	} else {
		l, err = link.AttachTracing(link.TracingOptions{Program: p})
	}
	if err != nil {
		return fmt.Errorf("attach %s: %w", target, err)
	}
	a.links = append(a.links, l)
	return nil
}

func (g *GenericSensor) attachKprobe(a *Attachment, id uint32, symbol string, ret bool) error {
	name := "generic_kprobe"
	if ret {
		name = "generic_kretprobe"
	}
	p, err := g.loadOne(name, id, 0, nil)
	if err != nil {
		return fmt.Errorf("load kprobe program for %s: %w", symbol, err)
	}
	a.progs = append(a.progs, p)
	var l link.Link
	if ret {
		l, err = link.Kretprobe(symbol, p, nil)
	} else {
		l, err = link.Kprobe(symbol, p, nil)
	}
	if err != nil {
		return fmt.Errorf("attach kprobe %s: %w", symbol, err)
	}
	a.links = append(a.links, l)
	return nil
}

func (g *GenericSensor) attachKprobeMulti(a *Attachment, req *HookRequest) error {
	p, err := g.loadOne("generic_kprobe_multi", 0, 0, nil)
	if err != nil {
		return fmt.Errorf("load kprobe.multi program: %w", err)
	}
	a.progs = append(a.progs, p)
	syms := make([]string, len(req.Targets))
	cookies := make([]uint64, len(req.Targets))
	for i, t := range req.Targets {
		syms[i] = symbolFor(req, t.Name)
		cookies[i] = uint64(t.ID)
	}
	l, err := link.KprobeMulti(p, link.KprobeMultiOptions{Symbols: syms, Cookies: cookies})
	if err != nil {
		return fmt.Errorf("attach kprobe.multi to %s: %w", strings.Join(syms, ", "), err)
	}
	a.links = append(a.links, l)
	return nil
}

func (g *GenericSensor) attachTracepoints(a *Attachment, req *HookRequest) error {
	for _, t := range req.Targets {
		group, event := "syscalls", "sys_enter_"+t.Name
		if req.Kind == HookTracepoint {
			var ok bool
			group, event, ok = strings.Cut(t.Name, "/")
			if !ok {
				return fmt.Errorf("tracepoint %q: want subsystem/event", t.Name)
			}
		}
		if err := g.attachTracepoint(a, t.ID, "generic_tracepoint", group, event); err != nil {
			return err
		}
		if req.Kind == HookSyscall && req.Return {
			if err := g.attachTracepoint(a, t.ID, "generic_tracepoint_exit", "syscalls", "sys_exit_"+t.Name); err != nil {
				return err
			}
		}
	}
	return nil
}

func (g *GenericSensor) attachTracepoint(a *Attachment, id uint32, prog, group, event string) error {
	p, err := g.loadOne(prog, id, 0, nil)
	if err != nil {
		return fmt.Errorf("load tracepoint program for %s/%s: %w", group, event, err)
	}
	a.progs = append(a.progs, p)
	l, err := link.Tracepoint(group, event, p, nil)
	if errors.Is(err, os.ErrNotExist) {
		if group == "syscalls" {
			return cannot("this kernel has no tracepoint %s/%s: the syscall is not built into it (for example init_module without module support)", group, event)
		}
		return cannot("this kernel has no tracepoint %s/%s", group, event)
	}
	if err != nil {
		return fmt.Errorf("attach tracepoint %s/%s: %w", group, event, err)
	}
	a.links = append(a.links, l)
	return nil
}

// TracepointField is one field of a tracepoint's format.
type TracepointField struct {
	Name   string
	Type   string
	Offset uint16
	Size   uint8
	Signed bool
}

// TracepointFormat reads the fields of subsystem/event from tracefs, in
// order (the four common_* fields first).
func TracepointFormat(tracefs, subsystem, event string) ([]TracepointField, error) {
	if tracefs == "" {
		return nil, errors.New("tracefs is not mounted")
	}
	b, err := os.ReadFile(filepath.Join(tracefs, "events", subsystem, event, "format"))
	if err != nil {
		return nil, fmt.Errorf("tracepoint %s/%s: %w", subsystem, event, err)
	}
	var out []TracepointField
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "field:") {
			continue
		}
		var f TracepointField
		for _, part := range strings.Split(line, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(part), ":")
			if !ok {
				continue
			}
			switch k {
			case "field":
				v = strings.TrimSpace(v)
				i := strings.LastIndexAny(v, " *")
				if i < 0 {
					f.Name = v
				} else {
					f.Type, f.Name = strings.TrimSpace(v[:i+1]), v[i+1:]
				}
				if j := strings.IndexByte(f.Name, '['); j >= 0 {
					f.Type += f.Name[j:]
					f.Name = f.Name[:j]
				}
			case "offset":
				fmt.Sscanf(v, "%d", &f.Offset)
			case "size":
				fmt.Sscanf(v, "%d", &f.Size)
			case "signed":
				f.Signed = strings.TrimSpace(v) == "1"
			}
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("tracepoint %s/%s: no fields in its format", subsystem, event)
	}
	return out, nil
}
