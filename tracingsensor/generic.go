package tracingsensor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"

	"github.com/vigilsec/vigil/kprobes"
	"github.com/vigilsec/vigil/kprobes/abi"
	"github.com/vigilsec/vigil/process"
	"github.com/vigilsec/vigil/tracingpolicies"
)

// generic holds the maps shared by every tracing-policy program and loads
// one copy of the generic program (kprobes/abi/generic.bpf.c) per hook,
// attached with the mechanism kprobes plans for it.
type generic struct {
	// spec is the generic object's specification, which a hook's program
	// is copied from: about 2.6 MiB of heap, so it is parsed again (about
	// 20 ms) for each policy loaded and dropped once the policy's programs
	// are (dropSpec), not kept for the agent's lifetime. The sensor's lock
	// serialises the loads.
	spec *ebpf.CollectionSpec
	maps map[string]*ebpf.Map
	// owned are the maps this sensor created (the others belong to the
	// process sensor).
	owned    []*ebpf.Map
	features *kprobes.Features
	agentPID uint32
	// generation is this run's number; only programs of the generation in
	// gen_active act.
	generation uint32
}

// newGeneric creates the tracing-policy maps, sharing the process sensor's
// ring buffer and process table. Programs are loaded by attach, one hook at
// a time. active, when not nil, is the gen_active map shared with the
// programs of another generation; otherwise the sensor has its own, naming
// its generation.
func newGeneric(proc *process.Sensor, f *kprobes.Features, agentPID int, generation uint32, active *ebpf.Map) (_ *generic, err error) {
	spec, err := abi.LoadGeneric()
	if err != nil {
		return nil, fmt.Errorf("load generic object: %w", err)
	}
	if agentPID == 0 {
		agentPID = os.Getpid()
	}
	g := &generic{maps: map[string]*ebpf.Map{}, features: f, agentPID: uint32(agentPID), generation: generation}
	defer func() {
		if err != nil {
			g.close()
		}
	}()
	for name, m := range proc.SharedMaps() {
		if spec.Maps[name] == nil {
			continue
		}
		if m == nil {
			return nil, fmt.Errorf("process sensor has no map %s", name)
		}
		g.maps[name] = m
	}
	if active != nil {
		g.maps[abi.GenericMapGenActive] = active
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
	if active == nil {
		if err := g.maps[abi.GenericMapGenActive].Put(uint32(0), generation); err != nil {
			return nil, fmt.Errorf("write the active generation: %w", err)
		}
	}
	return g, nil
}

// Map returns one of the maps by its name in generic.bpf.c.
func (g *generic) Map(name string) *ebpf.Map { return g.maps[name] }

// close releases the maps. Attachments must be closed first.
func (g *generic) close() {
	for _, m := range g.owned {
		m.Close()
	}
	g.owned = nil
}

// attachment is the programs and links serving one hook.
type attachment struct {
	mechanism kprobes.Mechanism
	progs     []*ebpf.Program
	links     []link.Link
	pinned    bool
	closed    bool
}

// pin pins the attachment's links as dir/prefix-N.
func (a *attachment) pin(dir, prefix string) error {
	for i, l := range a.links {
		if err := kprobes.PinLink(l, filepath.Join(dir, fmt.Sprintf("%s-%d", prefix, i))); err != nil {
			return err
		}
		a.pinned = true
	}
	return nil
}

// Close detaches and unloads the hook's programs, pinned or not.
func (a *attachment) Close() error {
	if a == nil || a.closed {
		return nil
	}
	var errs []error
	if a.pinned {
		for _, l := range a.links {
			if err := l.Unpin(); err != nil {
				errs = append(errs, err)
			}
		}
		a.pinned = false
	}
	return errors.Join(append(errs, a.release())...)
}

// release closes the attachment's descriptors: its links stay attached
// when they are pinned.
func (a *attachment) release() error {
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

// hookFlags are the flags a hook's configuration needs for the mechanism
// serving it: how the program finds the call's arguments.
func hookFlags(req *kprobes.HookRequest, mech kprobes.Mechanism) uint32 {
	var flags uint32
	switch req.Kind {
	case kprobes.HookSyscall:
		flags |= uint32(abi.GenericGenHookFlagsGEN_HOOK_SYSCALL)
		switch mech {
		case kprobes.MechTracepoint:
			flags |= uint32(abi.GenericGenHookFlagsGEN_HOOK_TP_SYSCALL)
		default:
			// Kernel entry points of syscalls take the user's pt_regs.
			flags |= uint32(abi.GenericGenHookFlagsGEN_HOOK_WRAPPED_REGS)
		}
	case kprobes.HookTracepoint:
		if mech != kprobes.MechRawTracepoint {
			flags |= uint32(abi.GenericGenHookFlagsGEN_HOOK_TRACEPOINT)
		}
	}
	return flags
}

// plan returns the mechanism attach would use for req and the hook flags
// it needs, without loading anything.
//
// A trampoline (fentry, fexit, fmod_ret) needs each target function in the
// kernel's BTF exactly once; where one is missing or named twice (some 6.1
// builds list syscall wrappers twice) the next cheapest mechanism serves
// the hook, unless the request forced the mechanism.
func (g *generic) plan(req *kprobes.HookRequest) (kprobes.Mechanism, uint32, error) {
	mech, err := g.features.PlanHook(req)
	for err == nil && kprobes.BTFMechanism(mech) {
		btfErr := g.btfTargets(req)
		if btfErr == nil {
			break
		}
		if req.Mechanism != "" {
			return "", 0, btfErr
		}
		r := *req
		r.Exclude = append(append([]kprobes.Mechanism(nil), req.Exclude...), mech)
		var next kprobes.Mechanism
		if next, err = g.features.PlanHook(&r); err != nil {
			err = fmt.Errorf("%w (%s: %v)", err, mech, btfErr)
			break
		}
		req.Exclude, mech = r.Exclude, next
	}
	if err != nil {
		return "", 0, err
	}
	return mech, hookFlags(req, mech), nil
}

// btfTargets checks that every target of req has one function in the
// kernel's BTF.
func (g *generic) btfTargets(req *kprobes.HookRequest) error {
	for _, t := range req.Targets {
		if _, err := g.funcParams(kprobes.SymbolFor(req, t.Name)); err != nil {
			return err
		}
	}
	return nil
}

// attach loads and attaches the programs serving req. The hook's
// configuration must already be in the gen_hooks map, with the flags plan
// returned.
func (g *generic) attach(req *kprobes.HookRequest) (_ *attachment, err error) {
	mech, _, err := g.plan(req)
	if err != nil {
		return nil, err
	}
	a := &attachment{mechanism: mech}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	switch mech {
	case kprobes.MechLSM:
		for _, t := range req.Targets {
			if err = g.attachBTF(a, t.ID, abi.GenericProgGenericLsm, ebpf.AttachLSMMac, t.Name); err != nil {
				break
			}
		}
	case kprobes.MechFentry, kprobes.MechFexit, kprobes.MechFmodRet:
		prog, at := abi.GenericProgGenericFentry, ebpf.AttachTraceFEntry
		if mech == kprobes.MechFexit {
			prog, at = abi.GenericProgGenericFexit, ebpf.AttachTraceFExit
		} else if mech == kprobes.MechFmodRet {
			prog, at = abi.GenericProgGenericFmodRet, ebpf.AttachModifyReturn
		}
		for _, t := range req.Targets {
			if err = g.attachBTF(a, t.ID, prog, at, kprobes.SymbolFor(req, t.Name)); err != nil {
				break
			}
		}
	case kprobes.MechKprobeMulti:
		err = g.attachKprobeMulti(a, req)
	case kprobes.MechKprobe:
		for _, t := range req.Targets {
			if err = g.attachKprobe(a, t.ID, kprobes.SymbolFor(req, t.Name), false); err != nil {
				break
			}
			if req.Return {
				if err = g.attachKprobe(a, t.ID, kprobes.SymbolFor(req, t.Name), true); err != nil {
					break
				}
			}
		}
	case kprobes.MechTracepoint:
		err = g.attachTracepoints(a, req)
	case kprobes.MechRawTracepoint:
		for _, t := range req.Targets {
			if err = g.attachRawTracepoint(a, t.ID, t.Name); err != nil {
				break
			}
		}
	case kprobes.MechOverrideReturn:
		err = fmt.Errorf("%w: bpf_override_return is not implemented by this build", kprobes.ErrCannotAttach)
	default:
		err = fmt.Errorf("mechanism %s not handled", mech)
	}
	if err != nil {
		return nil, err
	}
	return a, nil
}

// objectSpec returns the generic object's specification, parsing it when
// dropSpec has dropped it.
func (g *generic) objectSpec() (*ebpf.CollectionSpec, error) {
	if g.spec == nil {
		spec, err := abi.LoadGeneric()
		if err != nil {
			return nil, fmt.Errorf("load generic object: %w", err)
		}
		g.spec = spec
	}
	return g.spec, nil
}

// dropSpec lets the garbage collector have the object's specification
// until the next program load (the kernel's BTF is the loads' shared
// cache, kprobes.KernelTypes, which the agent releases once ready).
func (g *generic) dropSpec() { g.spec = nil }

// loadOne loads program name of the generic object for one hook.
func (g *generic) loadOne(name string, hookID, nparams uint32, fix func(*ebpf.ProgramSpec)) (*ebpf.Program, error) {
	obj, err := g.objectSpec()
	if err != nil {
		return nil, err
	}
	spec := obj.Copy()
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
	}{{abi.GenericVarHookId, hookID}, {abi.GenericVarNparams, nparams}, {abi.GenericVarAgentTgid, g.agentPID}, {abi.GenericVarGeneration, g.generation}} {
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
	coll, err := kprobes.LoadCollection(spec, ebpf.CollectionOptions{MapReplacements: repl})
	if err != nil {
		return nil, kprobes.VerifierHint(err)
	}
	prog := coll.DetachProgram(name)
	coll.Close()
	return prog, nil
}

func (g *generic) kernelSpec() (*btf.Spec, error) {
	return kprobes.KernelSpec()
}

// funcParams returns the number of parameters of a kernel function.
func (g *generic) funcParams(symbol string) (uint32, error) {
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

func (g *generic) attachBTF(a *attachment, id uint32, prog string, at ebpf.AttachType, target string) error {
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
	l, err := kprobes.AttachBTF(p, at, target)
	if err != nil {
		return err
	}
	a.links = append(a.links, l)
	return nil
}

func (g *generic) attachKprobe(a *attachment, id uint32, symbol string, ret bool) error {
	name := abi.GenericProgGenericKprobe
	if ret {
		name = abi.GenericProgGenericKretprobe
	}
	p, err := g.loadOne(name, id, 0, nil)
	if err != nil {
		return fmt.Errorf("load kprobe program for %s: %w", symbol, err)
	}
	a.progs = append(a.progs, p)
	l, err := kprobes.AttachKprobe(symbol, p, ret)
	if err != nil {
		return err
	}
	a.links = append(a.links, l)
	return nil
}

func (g *generic) attachKprobeMulti(a *attachment, req *kprobes.HookRequest) error {
	p, err := g.loadOne(abi.GenericProgGenericKprobeMulti, 0, 0, nil)
	if err != nil {
		return fmt.Errorf("load kprobe.multi program: %w", err)
	}
	a.progs = append(a.progs, p)
	syms := make([]string, len(req.Targets))
	cookies := make([]uint64, len(req.Targets))
	for i, t := range req.Targets {
		syms[i] = kprobes.SymbolFor(req, t.Name)
		cookies[i] = uint64(t.ID)
	}
	l, err := kprobes.AttachKprobeMulti(p, syms, cookies)
	if err != nil {
		return err
	}
	a.links = append(a.links, l)
	return nil
}

func (g *generic) attachTracepoints(a *attachment, req *kprobes.HookRequest) error {
	for _, t := range req.Targets {
		group, event := "syscalls", "sys_enter_"+t.Name
		if req.Kind == kprobes.HookTracepoint {
			var ok bool
			group, event, ok = strings.Cut(t.Name, "/")
			if !ok {
				return fmt.Errorf("tracepoint %q: want subsystem/event", t.Name)
			}
		}
		if err := g.attachTracepoint(a, t.ID, abi.GenericProgGenericTracepoint, group, event); err != nil {
			return err
		}
		if req.Kind == kprobes.HookSyscall && req.Return {
			if err := g.attachTracepoint(a, t.ID, abi.GenericProgGenericTracepointExit, "syscalls", "sys_exit_"+t.Name); err != nil {
				return err
			}
		}
	}
	return nil
}

// attachRawTracepoint attaches the raw tracepoint program to name
// (subsystem/event), told how many arguments the tracepoint passes.
func (g *generic) attachRawTracepoint(a *attachment, id uint32, name string) error {
	_, event, ok := strings.Cut(name, "/")
	if !ok {
		return fmt.Errorf("tracepoint %q: want subsystem/event", name)
	}
	spec, err := g.kernelSpec()
	if err != nil {
		return fmt.Errorf("raw tracepoint %s: kernel BTF: %w", name, err)
	}
	nargs, err := tracingpolicies.RawTracepointArgs(spec, event)
	if err != nil {
		return fmt.Errorf("raw tracepoint %s: %w", name, err)
	}
	p, err := g.loadOne(abi.GenericProgGenericRawTracepoint, id, uint32(min(nargs, int(abi.GenericGenLimitGEN_MAX_ARGS))), nil)
	if err != nil {
		return fmt.Errorf("load raw tracepoint program for %s: %w", name, err)
	}
	a.progs = append(a.progs, p)
	l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: event, Program: p})
	if err != nil {
		return fmt.Errorf("attach raw tracepoint %s: %w", name, err)
	}
	a.links = append(a.links, l)
	return nil
}

func (g *generic) attachTracepoint(a *attachment, id uint32, prog, group, event string) error {
	p, err := g.loadOne(prog, id, 0, nil)
	if err != nil {
		return fmt.Errorf("load tracepoint program for %s/%s: %w", group, event, err)
	}
	a.progs = append(a.progs, p)
	l, err := kprobes.AttachTracepoint(group, event, p)
	if err != nil {
		return err
	}
	a.links = append(a.links, l)
	return nil
}
