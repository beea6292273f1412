package tracingpolicies

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/vigilsec/vigil/kprobes"
)

var (
	// functionNameRE matches kernel symbol names, including the suffixes
	// the compiler adds (.isra.0, .constprop.0).
	functionNameRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_.]+)?$`)
	identifierRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	tpSubsystemRE   = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]*$`)
	syscallPrefixes = []string{"__x64_", "__arm64_", "__s390x_", "__riscv_"}
)

// syscallName turns sys_NAME, or sys_NAME with an architecture prefix
// (__x64_sys_NAME), into NAME.
func syscallName(call string) (string, error) {
	s := call
	if strings.HasPrefix(s, "__ia32_") || strings.Contains(s, "/") {
		return "", fmt.Errorf("%q: 32-bit compat syscalls are not supported by Vigil; write sys_NAME for the native syscall", call)
	}
	for _, p := range syscallPrefixes {
		s = strings.TrimPrefix(s, p)
	}
	name, ok := strings.CutPrefix(s, "sys_")
	if !ok || !identifierRE.MatchString(name) {
		return "", fmt.Errorf("%q is not a syscall name: write sys_NAME, such as sys_openat", call)
	}
	return name, nil
}

func (c *checker) tags(path string, tags []string) []string {
	if len(tags) > MaxTags {
		c.errorf(path, "%d tags; at most %d", len(tags), MaxTags)
	}
	for i, t := range tags {
		switch {
		case t == "":
			c.errorf(fmt.Sprintf("%s[%d]", path, i), "empty tag")
		case len(t) > MaxTagLen:
			c.errorf(fmt.Sprintf("%s[%d]", path, i), "tag is %d bytes long; at most %d", len(t), MaxTagLen)
		}
	}
	return tags
}

func (c *checker) message(path, msg string) string {
	if len(msg) > MaxMessageLen {
		c.errorf(path, "message is %d bytes long; at most %d", len(msg), MaxMessageLen)
	}
	return msg
}

func (c *checker) kprobe(path string, k *KProbeSpec, lists map[string]*list, used map[string]bool) *Hook {
	h := &Hook{Kind: HookKprobe, Path: path, Return: k.Return}
	callPath := path + ".call"
	switch name, isList := strings.CutPrefix(k.Call, "list:"); {
	case k.Call == "":
		c.errorf(callPath, "missing: name the kernel function, the syscall (sys_NAME) or a list (list:NAME)")
		return nil
	case isList:
		used[name] = true
		l, ok := lists[name]
		if !ok {
			known := make([]string, 0, len(lists))
			for n := range lists {
				known = append(known, n)
			}
			sort.Strings(known)
			c.errorf(callPath, "no list named %q in spec.lists%s", name, didYouMean(name, known))
			return nil
		}
		if l.syscalls {
			h.Kind = HookSyscall
		}
		if k.Syscall != nil && *k.Syscall != l.syscalls {
			if l.syscalls {
				c.errorf(path+".syscall", "list %q holds syscalls (type: syscalls); remove syscall: false", name)
			} else {
				c.errorf(path+".syscall", "list %q holds kernel functions (it has no type); set its type to syscalls, or remove syscall: true", name)
			}
		}
		h.Functions = l.values
	case k.Syscall == nil || *k.Syscall:
		h.Kind = HookSyscall
		n, err := syscallName(k.Call)
		if err != nil {
			if k.Syscall == nil && functionNameRE.MatchString(k.Call) && !strings.Contains(k.Call, "sys_") {
				c.errorf(callPath, "%q is not a syscall name (sys_NAME), and syscall defaults to true as in Tetragon; set syscall: false to hook the kernel function %s", k.Call, k.Call)
			} else {
				c.errorf(callPath, "%v", err)
			}
			return nil
		}
		h.Functions = []string{n}
	default:
		if !functionNameRE.MatchString(k.Call) {
			c.errorf(callPath, "%q is not a kernel function name", k.Call)
			return nil
		}
		if _, err := syscallName(k.Call); err == nil {
			c.warnf(path+".syscall", "%q looks like a syscall but syscall is false: its arguments will be read as the function's own (a struct pt_regs *); set syscall: true to read the syscall's arguments", k.Call)
		}
		h.Functions = []string{k.Call}
	}

	h.Message = c.message(path+".message", k.Message)
	h.Tags = c.tags(path+".tags", k.Tags)
	if len(k.Data) > 0 {
		c.unsupported(path+".data", "data fields (source: current_task, pt_regs) are not implemented")
	}
	switch strings.ToLower(k.ReturnArgAction) {
	case "":
	case "tracksock", "untracksock":
		h.ReturnArgAction = ActionTrackSock
		if strings.EqualFold(k.ReturnArgAction, "untracksock") {
			h.ReturnArgAction = ActionUntrackSock
		}
		if !k.Return || k.ReturnArg == nil || k.ReturnArg.Type != "sock" {
			c.errorf(path+".returnArgAction", "%s acts on the socket the call returns: it needs return: true and a returnArg of type sock", k.ReturnArgAction)
		}
	default:
		c.errorf(path+".returnArgAction", "%q is not a return action (want TrackSock or UntrackSock)", k.ReturnArgAction)
	}
	if k.Ignore != nil && k.Ignore.CallNotFound {
		c.unsupported(path+".ignore.callNotFound", "a policy that names a function this kernel lacks is refused, never partly loaded")
	}
	h.Args = c.args(path, h.Kind, k.Args)
	switch {
	case k.Return && k.ReturnArg == nil:
		c.errorf(path+".returnArg", "missing: return: true needs a returnArg giving the type of the return value")
	case !k.Return && k.ReturnArg != nil:
		// Tetragon ignores the returnArg then.
		c.warnf(path+".return", "returnArg is set but return is false, so the return value is not read; set return: true to read it")
	case k.ReturnArg != nil:
		h.ReturnArg = c.returnArg(path+".returnArg", k.ReturnArg)
	}
	h.Selectors = c.selectors(path, h, k.Selectors)
	return h
}

func (c *checker) tracepoint(path string, t *TracepointSpec) *Hook {
	h := &Hook{Kind: HookTracepoint, Path: path, Subsystem: t.Subsystem, Event: t.Event}
	ok := true
	if t.Subsystem == "" {
		c.errorf(path+".subsystem", "missing: name the tracepoint's subsystem, such as sched or raw_syscalls")
		ok = false
	} else if !tpSubsystemRE.MatchString(t.Subsystem) {
		c.errorf(path+".subsystem", "%q is not a tracepoint subsystem name", t.Subsystem)
		ok = false
	}
	if t.Event == "" {
		c.errorf(path+".event", "missing: name the tracepoint, such as sched_process_exec or sys_enter")
		ok = false
	} else if !identifierRE.MatchString(t.Event) {
		c.errorf(path+".event", "%q is not a tracepoint name", t.Event)
		ok = false
	}
	kind := HookTracepoint
	if t.Raw {
		h.Raw, h.Mechanism = true, kprobes.MechRawTracepoint
		// Its arguments are the tracepoint's parameters, read as a
		// function's are.
		kind = HookKprobe
	}
	h.Message = c.message(path+".message", t.Message)
	h.Tags = c.tags(path+".tags", t.Tags)
	h.Args = c.args(path, kind, t.Args)
	h.Selectors = c.selectors(path, h, t.Selectors)
	if !ok {
		return nil
	}
	return h
}

func (c *checker) lsmHook(path string, l *LSMHookSpec) *Hook {
	h := &Hook{Kind: HookLSM, Path: path}
	switch {
	case l.Hook == "":
		c.errorf(path+".hook", "missing: name the LSM hook, such as file_open or bprm_check_security")
		return nil
	case strings.HasPrefix(l.Hook, "bpf_lsm_") || strings.HasPrefix(l.Hook, "security_"):
		bare := strings.TrimPrefix(strings.TrimPrefix(l.Hook, "bpf_lsm_"), "security_")
		c.errorf(path+".hook", "%q: write the LSM hook's name without prefix, such as %q", l.Hook, bare)
		return nil
	case !identifierRE.MatchString(l.Hook):
		c.errorf(path+".hook", "%q is not an LSM hook name", l.Hook)
		return nil
	}
	h.Functions = []string{l.Hook}
	h.Message = c.message(path+".message", l.Message)
	h.Tags = c.tags(path+".tags", l.Tags)
	h.Args = c.args(path, HookLSM, l.Args)
	h.Selectors = c.selectors(path, h, l.Selectors)
	return h
}

// argType resolves a type name, reporting unknown and unsupported types.
func (c *checker) argType(path, name string) (ArgType, bool) {
	if t, ok := ParseArgType(name); ok {
		return t, true
	}
	switch why, known := unsupportedArgTypes[name]; {
	case name == "":
		c.errorf(path, "missing: give the argument's type, such as int, string, file or sock")
	case known:
		c.errorf(path, "type %q is not supported by Vigil: %s", name, why)
	default:
		c.errorf(path, "unknown type %q%s", name, didYouMean(name, argTypeNames()))
	}
	return "", false
}

func (c *checker) args(hookPath string, kind HookKind, specs []ArgSpec) []Arg {
	if len(specs) > MaxArgsPerHook {
		c.errorf(hookPath+".args", "%d args; a hook reads at most %d", len(specs), MaxArgsPerHook)
	}
	maxIndex := uint32(MaxArgIndex)
	if kind == HookTracepoint {
		maxIndex = MaxTracepointFieldIndex
	}
	var out []Arg
	seen := map[string]int{}
	for i, a := range specs {
		path := fmt.Sprintf("%s.args[%d]", hookPath, i)
		c.rejectArgFields(path, &a, kind)
		if a.Index > maxIndex {
			if kind == HookTracepoint {
				c.errorf(path+".index", "index %d is out of range (tracepoint fields go up to %d)", a.Index, maxIndex)
			} else {
				c.errorf(path+".index", "index %d is out of range: arguments are read from the first %d parameters (0 to %d)", a.Index, MaxArgIndex+1, MaxArgIndex)
			}
		}
		// One parameter can be read along several resolve paths.
		key := fmt.Sprintf("%d/%s/%s", a.Index, a.BTFType, a.Resolve)
		if j, dup := seen[key]; dup {
			c.errorf(path+".index", "index %d is already read by args[%d]", a.Index, j)
		}
		seen[key] = i
		if len(a.Label) > MaxLabelLen {
			c.errorf(path+".label", "label is %d bytes long; at most %d", len(a.Label), MaxLabelLen)
		}
		t, ok := c.argType(path+".type", a.Type)
		if !ok {
			out = append(out, Arg{Index: a.Index, Label: a.Label})
			continue
		}
		if need, ok := kernelOnlyTypes[t]; ok && kind == HookSyscall {
			c.errorf(path+".type", "%s needs a %s, and a syscall's arguments are integers and pointers to user memory; read an fd, a string or a sockaddr, or hook a kernel function that takes one", t, need)
			out = append(out, Arg{Index: a.Index, Label: a.Label})
			continue
		}
		if need, ok := kernelOnlyTypes[t]; ok && kind == HookUprobe {
			c.errorf(path+".type", "%s needs a %s, and a user function's arguments are integers and pointers to user memory; read it as an integer, a string or a char_buf", t, need)
			out = append(out, Arg{Index: a.Index, Label: a.Label})
			continue
		}
		if t == TypeFd && kind == HookUprobe {
			c.errorf(path+".type", "fd resolves a descriptor of the calling process in the kernel, which a uprobe's program does not; read it as an int")
			out = append(out, Arg{Index: a.Index, Label: a.Label})
			continue
		}
		isBuf := t == TypeCharBuf || t == TypeCharIovec
		if a.SizeArgIndex != 0 {
			switch {
			case !isBuf:
				c.errorf(path+".sizeArgIndex", "sizeArgIndex applies to char_buf and char_iovec only, not %s", t)
			case a.SizeArgIndex-1 == a.Index:
				c.errorf(path+".sizeArgIndex", "sizeArgIndex %d names this argument itself; it is 1-based: the size of a buffer at index %d passed with its size at index %d is sizeArgIndex: %d", a.SizeArgIndex, a.Index, a.Index+1, a.Index+2)
			case a.SizeArgIndex-1 > maxIndex:
				c.errorf(path+".sizeArgIndex", "sizeArgIndex %d is out of range (1 to %d; it is 1-based)", a.SizeArgIndex, maxIndex+1)
			}
		}
		if a.ReturnCopy {
			switch {
			case !isBuf:
				c.errorf(path+".returnCopy", "returnCopy applies to char_buf and char_iovec only, not %s", t)
			case kind != HookKprobe && kind != HookSyscall:
				c.errorf(path+".returnCopy", "returnCopy reads the buffer when the call returns, which only kprobes and syscalls can do")
			}
		}
		if a.MaxData {
			switch {
			case t != TypeCharBuf:
				c.errorf(path+".maxData", "maxData applies to char_buf only, not %s", t)
			case a.ReturnCopy:
				c.errorf(path+".maxData", "maxData cannot be combined with returnCopy")
			}
		}
		out = append(out, Arg{Index: a.Index, Type: t, Label: a.Label, SizeArgIndex: a.SizeArgIndex, ReturnCopy: a.ReturnCopy, MaxData: a.MaxData, Resolve: a.Resolve, BTFType: a.BTFType})
	}
	return out
}

// rejectArgFields reports the argument fields the hook kind cannot have;
// kind is "" for a return value.
func (c *checker) rejectArgFields(path string, a *ArgSpec, kind HookKind) {
	switch {
	case a.Resolve == "" && a.BTFType != "":
		c.errorf(path+".btfType", "btfType casts the parameter for resolve; give the path of fields to read in resolve")
	case a.Resolve == "":
	case kind == "":
		c.unsupported(path+".resolve", "resolve on a return value is not implemented")
	case kind == HookSyscall:
		c.errorf(path+".resolve", "resolve reads kernel structures through BTF, and a syscall's arguments are integers and pointers to user memory; hook a kernel function, an LSM hook or a raw tracepoint")
	case kind == HookUprobe:
		c.unsupported(path+".resolve", "resolve follows kernel structures through the kernel's BTF; a user function's structures are not described there")
	case kind == HookTracepoint:
		c.errorf(path+".resolve", "resolve reads a tracepoint's arguments through BTF: set raw: true (the arguments are then the tracepoint's own, not its format fields)")
	default:
		if err := checkResolveSyntax(a.Resolve); err != nil {
			c.errorf(path+".resolve", "%v", err)
		}
	}
	if a.Source != "" {
		c.unsupported(path+".source", "data sources other than the hook's arguments are not implemented")
	}
	if a.BTFTypeModule != "" {
		c.unsupported(path+".btfTypeModule", "module BTF is not implemented")
	}
}

// kernelOnlyTypes are types that read kernel objects, which syscalls are
// never passed, with the C type each needs.
var kernelOnlyTypes = map[ArgType]string{
	TypeFile: "struct file *", TypePath: "struct path *", TypeFilename: "struct filename *",
	TypeLinuxBinprm: "struct linux_binprm *", TypeDentry: "struct dentry *", TypeSock: "struct sock *", TypeSocket: "struct socket *",
	TypeSkb: "struct sk_buff *", TypeCred: "struct cred *", TypeKernelCapT: "kernel_cap_t",
}

// returnArgTypes are the types a return value can be read as.
var returnArgTypes = map[ArgType]bool{TypeSock: true, TypeFile: true}

func (c *checker) returnArg(path string, a *ArgSpec) *Arg {
	c.rejectArgFields(path, a, "")
	if a.Index != 0 {
		c.errorf(path+".index", "the return value has no index; remove it")
	}
	if a.SizeArgIndex != 0 || a.ReturnCopy || a.MaxData {
		c.errorf(path, "sizeArgIndex, returnCopy and maxData do not apply to a return value")
	}
	t, ok := c.argType(path+".type", a.Type)
	if !ok {
		return nil
	}
	if t.Class() != ClassInteger && !returnArgTypes[t] {
		c.errorf(path+".type", "a return value can be read as an integer type, sock or file, not %s", t)
		return nil
	}
	return &Arg{Type: t, Label: a.Label}
}
