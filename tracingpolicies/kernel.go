package tracingpolicies

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"runtime"
	"slices"
	"sort"
	"strings"

	"github.com/cilium/ebpf/btf"

	"github.com/vigilsec/vigil/internal/manifest"
)

// ValidateOptions are the optional inputs of Validate.
type ValidateOptions struct {
	// Tracefs is the tracefs file system, such as
	// os.DirFS("/sys/kernel/tracing"). When set, tracepoint formats and
	// syscall arguments are read from its events/ directory; without it,
	// tracepoint fields come from BTF where the kernel describes them, and
	// syscall argument types are not checked.
	Tracefs fs.FS
}

// Validate checks a parsed policy against a kernel: that every function,
// syscall, LSM hook and tracepoint exists, that argument indexes are within
// the parameters and that each argument type fits its parameter. kernel is
// the kernel's BTF (btf.LoadKernelSpec); with a nil kernel and no Tracefs
// there is nothing more to check than Parse did, except that the binary of
// each uprobe exists on this node and defines its symbols.
//
// It returns warnings, and a manifest.Errors with one located problem per
// line.
func Validate(p *Policy, kernel *btf.Spec, opts *ValidateOptions) (warnings manifest.Errors, err error) {
	if opts == nil {
		opts = &ValidateOptions{}
	}
	k := &kernelChecker{checker: checker{doc: p.Doc}, spec: kernel, tracefs: opts.Tracefs, tracefsOK: opts.Tracefs != nil}
	// A uprobe's binary is on the node, whatever the kernel.
	for _, h := range p.Hooks {
		switch h.Kind {
		case HookUprobe:
			k.uprobe(h)
		case HookUsdt:
			k.usdt(h)
		}
	}
	if kernel == nil && opts.Tracefs == nil {
		return k.warns, k.errs.Err()
	}
	if k.tracefsOK {
		if _, err := fs.Stat(opts.Tracefs, "events"); err != nil {
			k.tracefsOK = false
		}
	}
	// Resolve paths are compiled against this kernel, afresh.
	for _, h := range p.Hooks {
		for i := range h.Args {
			h.Args[i].Steps = nil
		}
	}
	for _, h := range p.Hooks {
		switch h.Kind {
		case HookKprobe:
			k.kprobe(h)
		case HookSyscall:
			k.syscall(h)
		case HookLSM:
			k.lsm(h)
		case HookTracepoint:
			k.tracepoint(h)
		}
	}
	return k.warns, k.errs.Err()
}

type kernelChecker struct {
	checker
	spec      *btf.Spec
	tracefs   fs.FS
	tracefsOK bool
	funcs     []string // all function names, for suggestions
}

// function finds a function in the kernel's BTF.
func (k *kernelChecker) function(name string) (*btf.Func, error) {
	var fn *btf.Func
	err := k.spec.TypeByName(name, &fn)
	if errors.Is(err, btf.ErrMultipleMatches) {
		types, _ := k.spec.AnyTypesByName(name)
		for _, t := range types {
			if f, ok := t.(*btf.Func); ok {
				return f, nil
			}
		}
	}
	return fn, err
}

func (k *kernelChecker) hasFunction(name string) bool {
	_, err := k.function(name)
	return err == nil
}

// suggestFunction returns " (did you mean X?)" for the function closest
// to name among those starting with prefix.
func (k *kernelChecker) suggestFunction(name, prefix string) string {
	if k.funcs == nil {
		for t, err := range k.spec.All() {
			if err != nil {
				break
			}
			if f, ok := t.(*btf.Func); ok {
				k.funcs = append(k.funcs, f.Name)
			}
		}
		sort.Strings(k.funcs)
	}
	var cands []string
	for _, f := range k.funcs {
		if rest, ok := strings.CutPrefix(f, prefix); ok && absDiff(len(rest), len(name)) <= 2 {
			cands = append(cands, rest)
		}
	}
	return didYouMean(name, cands)
}

func absDiff(a, b int) int {
	if a > b {
		return a - b
	}
	return b - a
}

func (k *kernelChecker) kprobe(h *Hook) {
	if k.spec == nil {
		return
	}
	for _, name := range h.Functions {
		fn, err := k.function(name)
		if err != nil {
			hint := k.suggestFunction(name, "")
			if k.hasFunction(syscallSymbolPrefix() + strings.TrimPrefix(name, "sys_")) {
				hint = fmt.Sprintf(" (it is a syscall: set syscall: true and call: sys_%s)", strings.TrimPrefix(name, "sys_"))
			}
			k.errorf(h.Path+".call", "kernel function %q not found in the kernel's BTF%s", name, hint)
			continue
		}
		params, ret := funcParams(fn)
		k.checkArgs(h, name, "parameter", params)
		k.checkReturn(h, name, ret)
	}
}

func syscallSymbolPrefix() string {
	switch runtime.GOARCH {
	case "arm64":
		return "__arm64_sys_"
	case "s390x":
		return "__s390x_sys_"
	case "riscv64":
		return "__riscv_sys_"
	}
	return "__x64_sys_"
}

func (k *kernelChecker) syscall(h *Hook) {
	for _, name := range h.Functions {
		format, inTracefs := k.readFormat(h.Path, "syscalls", "sys_enter_"+name)
		exists := inTracefs
		if !exists && k.spec != nil {
			exists = k.hasFunction(syscallSymbolPrefix()+name) || k.hasFunction("sys_"+name)
		}
		if !exists {
			hint := ""
			if k.spec != nil {
				hint = k.suggestFunction(name, syscallSymbolPrefix())
			}
			if hint != "" {
				hint = strings.Replace(hint, `"`, `"sys_`, 1)
			}
			k.errorf(h.Path+".call", "unknown syscall %q on this kernel%s", "sys_"+name, hint)
			continue
		}
		k.checkReturn(h, "sys_"+name, &param{ctype: "long", kind: paramInt, names: []string{"long"}})
		if format == nil {
			continue
		}
		var params []param
		for _, f := range format {
			if !strings.HasPrefix(f.name, "common_") && f.name != "__syscall_nr" {
				params = append(params, f)
			}
		}
		k.checkArgs(h, "sys_"+name, "argument", params)
	}
}

func (k *kernelChecker) lsm(h *Hook) {
	if k.spec == nil {
		return
	}
	for _, name := range h.Functions {
		fn, err := k.function("bpf_lsm_" + name)
		if err != nil {
			k.errorf(h.Path+".hook", "LSM hook %q not found: the kernel's BTF has no bpf_lsm_%s (a misspelt hook, or one this kernel does not have)%s",
				name, name, k.suggestFunction(name, "bpf_lsm_"))
			continue
		}
		params, ret := funcParams(fn)
		k.checkArgs(h, name, "parameter", params)
		if ret == nil {
			for _, s := range h.Selectors {
				for i, a := range s.Actions {
					if a.Kind == ActionOverride {
						k.errorf(fmt.Sprintf("%s.matchActions[%d].action", s.Path, i), "LSM hook %s returns nothing, so Override cannot deny it; use Sigkill or another hook", name)
					}
				}
			}
		}
	}
}

func (k *kernelChecker) tracepoint(h *Hook) {
	name := h.Subsystem + "/" + h.Event
	if h.Raw {
		k.rawTracepoint(h, name)
		return
	}
	fields, exists := k.readFormat(h.Path, h.Subsystem, h.Event)
	if !exists && k.spec != nil {
		fields, exists = k.btfTracepoint(h.Subsystem, h.Event)
	}
	if !exists {
		if k.spec == nil && !k.tracefsOK {
			return
		}
		k.errorf(h.Path+".event", "tracepoint %s not found on this kernel", name)
		return
	}
	if fields != nil {
		k.checkArgs(h, name, "field", fields)
	}
}

// rawTracepoint checks a raw tracepoint's args against its parameters, the
// btf_trace_EVENT typedef's (void *__data, PARAMS...).
func (k *kernelChecker) rawTracepoint(h *Hook, name string) {
	if k.spec == nil {
		return
	}
	params, err := rawTracepointParams(k.spec, h.Event)
	if err != nil {
		k.errorf(h.Path+".event", "raw tracepoint %s: %v", name, err)
		return
	}
	k.checkArgs(h, "raw tracepoint "+name, "argument", params)
}

// RawTracepointArgs returns how many arguments the raw tracepoint event
// passes its programs.
func RawTracepointArgs(spec *btf.Spec, event string) (int, error) {
	params, err := rawTracepointParams(spec, event)
	return len(params), err
}

// rawTracepointParams returns the parameters of the raw tracepoint event
// (the arguments its programs get) from the btf_trace_EVENT typedef.
func rawTracepointParams(spec *btf.Spec, event string) ([]param, error) {
	var td *btf.Typedef
	if err := spec.TypeByName("btf_trace_"+event, &td); err != nil && !errors.Is(err, btf.ErrMultipleMatches) {
		return nil, fmt.Errorf("not found in the kernel's BTF (no btf_trace_%s)", event)
	}
	ptr, ok := btf.UnderlyingType(td.Type).(*btf.Pointer)
	if !ok {
		return nil, fmt.Errorf("btf_trace_%s is not a function pointer", event)
	}
	proto, ok := btf.UnderlyingType(ptr.Target).(*btf.FuncProto)
	if !ok || len(proto.Params) == 0 {
		return nil, fmt.Errorf("btf_trace_%s is not a function pointer", event)
	}
	var out []param
	for _, p := range proto.Params[1:] {
		out = append(out, btfParam(p.Name, p.Type))
	}
	return out, nil
}

// readFormat reads a tracepoint's format from tracefs. It returns
// exists=false when tracefs is not available or has no such tracepoint.
func (k *kernelChecker) readFormat(hookPath, subsystem, event string) (fields []param, exists bool) {
	if !k.tracefsOK {
		return nil, false
	}
	data, err := fs.ReadFile(k.tracefs, path.Join("events", subsystem, event, "format"))
	if err != nil {
		return nil, false
	}
	fields, err = parseFormat(data)
	if err != nil {
		k.warnf(hookPath, "cannot read the format of tracepoint %s/%s, its arguments are not checked: %v", subsystem, event, err)
		return nil, true
	}
	return fields, true
}

// btfTracepoint finds a tracepoint in BTF: the btf_trace_EVENT typedef says
// it exists, and trace_event_raw_EVENT (when the event has its own record
// type) gives its fields. Syscall tracepoints exist when the syscall does.
func (k *kernelChecker) btfTracepoint(subsystem, event string) (fields []param, exists bool) {
	if subsystem == "syscalls" {
		name, ok := strings.CutPrefix(event, "sys_enter_")
		if !ok {
			name, ok = strings.CutPrefix(event, "sys_exit_")
		}
		return nil, ok && (k.hasFunction(syscallSymbolPrefix()+name) || k.hasFunction("sys_"+name))
	}
	var td *btf.Typedef
	if err := k.spec.TypeByName("btf_trace_"+event, &td); err != nil && !errors.Is(err, btf.ErrMultipleMatches) {
		return nil, false
	}
	var rec *btf.Struct
	if err := k.spec.TypeByName("trace_event_raw_"+event, &rec); err != nil {
		return nil, true
	}
	for _, m := range rec.Members {
		switch {
		case m.Name == "ent":
			if ent, ok := btf.UnderlyingType(m.Type).(*btf.Struct); ok {
				for _, c := range ent.Members {
					fields = append(fields, btfParam("common_"+c.Name, c.Type))
				}
			}
		case m.Name == "__data":
		case strings.HasPrefix(m.Name, "__data_loc_"):
			fields = append(fields, param{name: strings.TrimPrefix(m.Name, "__data_loc_"), ctype: "__data_loc char[]", kind: paramDataLoc})
		case strings.HasPrefix(m.Name, "__rel_loc_"):
			fields = append(fields, param{name: strings.TrimPrefix(m.Name, "__rel_loc_"), ctype: "__rel_loc char[]", kind: paramDataLoc})
		default:
			fields = append(fields, btfParam(m.Name, m.Type))
		}
	}
	return fields, true
}

// checkArgs checks the hook's args against the parameters of what (a
// function, syscall or tracepoint); noun is "parameter", "argument" or
// "field".
func (k *kernelChecker) checkArgs(h *Hook, what, noun string, params []param) {
	for i, a := range h.Args {
		path := fmt.Sprintf("%s.args[%d]", h.Path, i)
		if int(a.Index) >= len(params) {
			k.errorf(path+".index", "index %d is out of range: %s has %s", a.Index, what, describeParams(noun, params))
			continue
		}
		p := params[a.Index]
		if a.Resolve != "" {
			var ok bool
			if p, ok = k.resolve(h, i, path, p); !ok {
				continue
			}
		}
		if a.Type != "" {
			if ok, want := fits(a.Type, p); !ok {
				k.errorf(path+".type", "%q does not fit %s %d of %s (%s): %s needs %s", a.Type, noun, a.Index, what, p, a.Type, want)
			}
		}
		if a.SizeArgIndex != 0 {
			switch si := int(a.SizeArgIndex) - 1; {
			case si >= len(params):
				k.errorf(path+".sizeArgIndex", "sizeArgIndex %d (index %d) is out of range: %s has %s", a.SizeArgIndex, si, what, describeParams(noun, params))
			case params[si].kind != paramInt:
				k.errorf(path+".sizeArgIndex", "sizeArgIndex %d names %s %d of %s (%s), which is not an integer size (sizeArgIndex is 1-based)", a.SizeArgIndex, noun, si, what, params[si])
			}
		}
	}
}

// resolve compiles the resolve path of argument i from parameter p into
// its Steps, and returns the field reached; false when it was reported.
// The arguments of a hook naming several functions must resolve alike.
func (k *kernelChecker) resolve(h *Hook, i int, path string, p param) (param, bool) {
	a := &h.Args[i]
	if p.typ == nil || k.spec == nil {
		k.errorf(path+".resolve", "resolve needs the kernel's BTF, and %s comes from elsewhere", p)
		return p, false
	}
	steps, field, err := resolvePath(k.spec, p.typ, a.BTFType, a.Resolve)
	if err != nil {
		where := ".resolve"
		if strings.HasPrefix(err.Error(), "btfType") {
			where = ".btfType"
		}
		k.errorf(path+where, "%q from %s: %v", a.Resolve, p, err)
		return p, false
	}
	if a.Steps != nil && !slices.Equal(a.Steps, steps) {
		k.errorf(path+".resolve", "%q lies at different places in the functions this hook names; hook them apart", a.Resolve)
		return p, false
	}
	a.Steps = steps
	field.name = a.Resolve
	return field, true
}

func (k *kernelChecker) checkReturn(h *Hook, what string, ret *param) {
	if h.ReturnArg == nil || h.ReturnArg.Type == "" {
		return
	}
	path := h.Path + ".returnArg.type"
	if ret == nil {
		k.errorf(path, "%s returns nothing (void); remove return and returnArg", what)
		return
	}
	if ok, want := fits(h.ReturnArg.Type, *ret); !ok {
		k.errorf(path, "%q does not fit the return type of %s (%s): %s needs %s", h.ReturnArg.Type, what, ret.ctype, h.ReturnArg.Type, want)
	}
}

func describeParams(noun string, params []param) string {
	if len(params) == 0 {
		return "no " + noun + "s"
	}
	parts := make([]string, len(params))
	for i, p := range params {
		parts[i] = fmt.Sprintf("%d: %s", i, p)
	}
	return fmt.Sprintf("%d %ss (%s)", len(params), noun, strings.Join(parts, ", "))
}
