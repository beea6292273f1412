package tracingpolicies

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/vigilsec/vigil/kprobes/abi"

	"github.com/vigilsec/vigil/kprobes"
)

// The compiled form of a policy is the content of the maps the generic BPF
// programs read (kprobes/abi/lib/generic.h): one GenHook and up to five
// GenSelectors per hook target, and the value sets the selectors refer to.
// Compile is pure; the loader writes the result into the kernel.

// IDs hands out the identifiers a compiled policy needs. Identifiers are
// global to the loaded policies; the loader owns the allocator.
type IDs interface {
	// HookID returns a free hook id, or an error when all are in use.
	HookID() (uint32, error)
	// SetID returns a fresh value-set id.
	SetID() uint32
	// FollowBit returns a free bit of the per-process follow mask
	// (followChildren, followForks), or an error when all 64 are in use.
	FollowBit() (uint8, error)
}

// KernelInfo is what compilation needs to know about the running kernel.
type KernelInfo struct {
	// TracepointFields returns the format of a tracepoint.
	TracepointFields func(subsystem, event string) ([]kprobes.TracepointField, error)
	// HostNamespace returns the inode of the host's namespace of a kind
	// (the one of PID 1), for "host_ns" values.
	HostNamespace func(ns NamespaceType) (uint32, error)
}

// Compiled is a policy in kernel form.
type Compiled struct {
	Policy *Policy
	// PolicyID identifies the policy in the kernel (gen_policies).
	PolicyID uint32
	State    abi.GenPolicy
	Hooks    []*CompiledHook
	IntSets  []abi.GenIntKey
	StrSets  []abi.GenStrKey
	// StrHeads are the heads of the Prefix and Equal string sets of
	// argument filters and the tails of their Postfix sets
	// (gen_str_heads), for the kernel's quick rejection.
	StrHeads []abi.GenHeadKey
	AddrSets []abi.GenAddrKey
	PortSets []abi.GenPortKey
	// FollowBinaries maps executable paths to the follow bits a process
	// running them gets (matchBinaries In with followChildren).
	FollowBinaries map[string]uint64
	// FollowPIDs maps pids to the follow bits they get (matchPIDs In with
	// followForks); descendants inherit them.
	FollowPIDs map[uint32]uint64
	// FollowBits are the bits allocated for this policy.
	FollowBits []uint8
}

// CompiledHook is one entry of spec.kprobes, spec.tracepoints or
// spec.lsmhooks, for every function it names.
type CompiledHook struct {
	Source  *Hook
	Request kprobes.HookRequest
	// Configs are the gen_hooks entries, one per target, in target order.
	// The loader adds the mechanism's flags.
	Configs []abi.GenHook
	// Selectors are the gen_selectors entries of each target (the same for
	// every target).
	Selectors []abi.GenSelector
	// Enforces is set when a selector has Sigkill, Signal or Override.
	Enforces bool
	// Resolves are the gen_resolves entries of the arguments with a
	// resolve path, by position in Configs[].Args (the same for every
	// target); the loader writes them at target id * GenMaxArgs +
	// position.
	Resolves map[int]abi.GenResolve
}

// The language's string limits must fit the kernel's set keys.
var (
	_ = [1]struct{}{}[MaxEqualValueLen+1-abi.GenStrMax]
	_ = [1]struct{}{}[MaxPrefixValueLen-abi.GenStrMax]
)

var argTypeCodes = map[ArgType]abi.GenArgType{
	TypeInt8:        abi.GenericGenArgTypeGEN_ARG_S8,
	TypeUint8:       abi.GenericGenArgTypeGEN_ARG_U8,
	TypeInt16:       abi.GenericGenArgTypeGEN_ARG_S16,
	TypeUint16:      abi.GenericGenArgTypeGEN_ARG_U16,
	TypeInt32:       abi.GenericGenArgTypeGEN_ARG_S32,
	TypeUint32:      abi.GenericGenArgTypeGEN_ARG_U32,
	TypeInt64:       abi.GenericGenArgTypeGEN_ARG_S64,
	TypeUint64:      abi.GenericGenArgTypeGEN_ARG_U64,
	TypeSizeT:       abi.GenericGenArgTypeGEN_ARG_U64,
	TypeCapability:  abi.GenericGenArgTypeGEN_ARG_S32,
	TypeString:      abi.GenericGenArgTypeGEN_ARG_STRING,
	TypeCharBuf:     abi.GenericGenArgTypeGEN_ARG_CHAR_BUF,
	TypeCharIovec:   abi.GenericGenArgTypeGEN_ARG_CHAR_IOVEC,
	TypeFd:          abi.GenericGenArgTypeGEN_ARG_FD,
	TypeFile:        abi.GenericGenArgTypeGEN_ARG_FILE,
	TypePath:        abi.GenericGenArgTypeGEN_ARG_PATH,
	TypeFilename:    abi.GenericGenArgTypeGEN_ARG_FILENAME,
	TypeLinuxBinprm: abi.GenericGenArgTypeGEN_ARG_BINPRM,
	TypeDentry:      abi.GenericGenArgTypeGEN_ARG_DENTRY,
	TypeSock:        abi.GenericGenArgTypeGEN_ARG_SOCK,
	TypeSocket:      abi.GenericGenArgTypeGEN_ARG_SOCKET,
	TypeSockaddr:    abi.GenericGenArgTypeGEN_ARG_SOCKADDR,
	TypeSkb:         abi.GenericGenArgTypeGEN_ARG_SKB,
	TypeCred:        abi.GenericGenArgTypeGEN_ARG_CRED,
	TypeKernelCapT:  abi.GenericGenArgTypeGEN_ARG_CAP_T,
	TypeSyscall64:   abi.GenericGenArgTypeGEN_ARG_SYSCALL64,
	TypeNop:         abi.GenericGenArgTypeGEN_ARG_NONE,
}

// userPointerTypes are read from user memory when they are syscall
// arguments.
var userPointerTypes = map[ArgType]bool{
	TypeString: true, TypeCharBuf: true, TypeCharIovec: true, TypeSockaddr: true,
}

var nsCodes = map[NamespaceType]abi.GenNS{
	NSUts:             abi.GenericGenNsGEN_NS_UTS,
	NSIpc:             abi.GenericGenNsGEN_NS_IPC,
	NSMnt:             abi.GenericGenNsGEN_NS_MNT,
	NSPid:             abi.GenericGenNsGEN_NS_PID,
	NSPidForChildren:  abi.GenericGenNsGEN_NS_PID_FOR_CHILDREN,
	NSNet:             abi.GenericGenNsGEN_NS_NET,
	NSTime:            abi.GenericGenNsGEN_NS_TIME,
	NSTimeForChildren: abi.GenericGenNsGEN_NS_TIME_FOR_CHILDREN,
	NSCgroup:          abi.GenericGenNsGEN_NS_CGROUP,
	NSUser:            abi.GenericGenNsGEN_NS_USER,
}

var capSetCodes = map[CapabilitySet]abi.GenCapSet{
	CapEffective:   abi.GenericGenCapSetGEN_CAP_EFFECTIVE,
	CapInheritable: abi.GenericGenCapSetGEN_CAP_INHERITABLE,
	CapPermitted:   abi.GenericGenCapSetGEN_CAP_PERMITTED,
}

var hookKinds = map[HookKind]kprobes.HookKind{
	HookKprobe:     kprobes.HookKernelFunction,
	HookSyscall:    kprobes.HookSyscall,
	HookLSM:        kprobes.HookLSM,
	HookTracepoint: kprobes.HookTracepoint,
}

// Compile turns a validated policy into its kernel form. Problems the
// language cannot express but the kernel form cannot hold (a value too long
// for a set key, too many follow sets) are reported with the policy's file,
// line and field path.
func Compile(p *Policy, policyID uint32, ids IDs, k *KernelInfo) (*Compiled, error) {
	c := &compiler{p: p, ids: ids, k: k, out: &Compiled{
		Policy:         p,
		PolicyID:       policyID,
		FollowBinaries: map[string]uint64{},
		FollowPIDs:     map[uint32]uint64{},
	}}
	if p.Mode == ModeMonitor {
		c.out.State.Mode = uint8(abi.GenericGenPolicyModeGEN_MODE_MONITOR)
	}
	if p.Kind == KindTracingPolicyNamespaced && p.Namespace == "" {
		return nil, errorList{p.Doc.Errorf("metadata.namespace", "missing: a TracingPolicyNamespaced applies to the pods of one namespace; name it in metadata.namespace or with --namespace")}
	}
	if p.Kind == KindTracingPolicyNamespaced || p.PodSelector != nil || p.ContainerSelector != nil {
		c.out.State.Scoped = 1
	}
	if p.Repeats.ReportAll {
		c.out.State.Repeats = uint8(abi.GenericGenRepeatsGEN_REPEATS_REPORT)
	}
	for _, h := range p.Hooks {
		c.hook(h)
	}
	if len(c.errs) > 0 {
		return nil, c.errs
	}
	return c.out, nil
}

type compiler struct {
	p    *Policy
	ids  IDs
	k    *KernelInfo
	out  *Compiled
	errs errorList
}

type errorList []error

func (l errorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

func (l errorList) Unwrap() []error { return l }

func (c *compiler) errorf(path, format string, args ...any) {
	c.errs = append(c.errs, c.p.Doc.Errorf(path, format, args...))
}

func (c *compiler) hook(h *Hook) {
	ch := &CompiledHook{Source: h, Request: kprobes.HookRequest{Kind: hookKinds[h.Kind], Return: h.Return, Mechanism: h.Mechanism}}
	base := abi.GenHook{PolicyId: c.out.PolicyID}
	if h.Return {
		base.Flags |= uint32(abi.GenericGenHookFlagsGEN_HOOK_RETURN)
	}
	switch h.ReturnArgAction {
	case ActionTrackSock:
		base.Flags |= uint32(abi.GenericGenHookFlagsGEN_HOOK_RET_TRACK_SOCK)
	case ActionUntrackSock:
		base.Flags |= uint32(abi.GenericGenHookFlagsGEN_HOOK_RET_UNTRACK_SOCK)
	}

	names := h.Functions
	switch {
	case h.Kind == HookTracepoint:
		names = []string{h.Subsystem + "/" + h.Event}
	case h.Kind == HookUsdt:
		if len(h.Sites) == 0 {
			c.errorf(h.Path, "USDT probe %s:%s is found in %s when the policy is validated, and it was not", h.Provider, h.Probe, h.Binary)
			return
		}
		names = nil
		for _, s := range h.Sites {
			names = append(names, fmt.Sprintf("%s:%s@%#x", h.Provider, h.Probe, s.Offset))
		}
	case h.Kind == HookUprobe && len(h.Offsets) > 0:
		names = nil
		for _, off := range h.Offsets {
			names = append(names, fmt.Sprintf("%#x", off))
		}
	}

	// Arguments.
	var fields []kprobes.TracepointField
	if h.Kind == HookTracepoint && !h.Raw {
		if c.k == nil || c.k.TracepointFields == nil {
			c.errorf(h.Path, "tracepoint %s/%s: its format is needed and tracefs is not available", h.Subsystem, h.Event)
			return
		}
		var err error
		fields, err = c.k.TracepointFields(h.Subsystem, h.Event)
		if err != nil {
			c.errorf(h.Path, "%v", err)
			return
		}
	}
	for i, a := range h.Args {
		if i >= len(base.Args) {
			c.errorf(fmt.Sprintf("%s.args[%d]", h.Path, i), "at most %d arguments per hook", len(base.Args))
			break
		}
		d, ok := c.argDesc(h, fmt.Sprintf("%s.args[%d]", h.Path, i), a, fields, i)
		if !ok {
			continue
		}
		if a.Resolve != "" {
			r, ok := c.resolveEntry(fmt.Sprintf("%s.args[%d]", h.Path, i), a)
			if !ok {
				continue
			}
			if ch.Resolves == nil {
				ch.Resolves = map[int]abi.GenResolve{}
			}
			ch.Resolves[i] = r
			d.Flags |= uint8(abi.GenericGenArgFlagsGEN_ARGF_RESOLVE)
		}
		base.Args[i] = d
	}
	base.Nargs = uint8(min(len(h.Args), len(base.Args)))
	if h.ReturnArg != nil && h.ReturnArg.Type != "" {
		base.Ret.Type = uint8(argTypeCodes[h.ReturnArg.Type])
	}

	// Selectors.
	for si := range h.Selectors {
		s := &h.Selectors[si]
		gs, enforce := c.selector(h, s)
		ch.Selectors = append(ch.Selectors, gs)
		if enforce {
			ch.Enforces = true
		}
		for _, a := range s.Actions {
			if a.Kind == ActionOverride {
				ch.Request.Override = true
			}
		}
	}
	if len(ch.Selectors) > int(abi.GenMaxSelectors) {
		c.errorf(h.Path+".selectors", "%d selectors; at most %d", len(ch.Selectors), abi.GenMaxSelectors)
		return
	}
	base.Nsel = uint8(len(ch.Selectors))
	markWholeStrings(&base, ch.Selectors)

	for _, name := range names {
		id, err := c.ids.HookID()
		if err != nil {
			c.errorf(h.Path, "%v", err)
			return
		}
		ch.Request.Targets = append(ch.Request.Targets, kprobes.HookTarget{ID: id, Name: name})
		ch.Configs = append(ch.Configs, base)
	}
	c.out.Hooks = append(c.out.Hooks, ch)
}

func (c *compiler) argDesc(h *Hook, path string, a Arg, fields []kprobes.TracepointField, pos int) (abi.GenArgDesc, bool) {
	code, ok := argTypeCodes[a.Type]
	if !ok {
		c.errorf(path+".type", "type %q cannot be read by the kernel programs", a.Type)
		return abi.GenArgDesc{}, false
	}
	d := abi.GenArgDesc{Type: uint8(code), Index: uint8(a.Index), SizeArg: uint8(a.SizeArgIndex)}
	if (h.Kind == HookSyscall || h.Kind == HookUprobe || h.Kind == HookUsdt || (h.Kind == HookTracepoint && !h.Raw && h.Subsystem == "syscalls")) && userPointerTypes[a.Type] {
		d.Flags |= uint8(abi.GenericGenArgFlagsGEN_ARGF_USER)
	}
	if a.ReturnCopy {
		d.Flags |= uint8(abi.GenericGenArgFlagsGEN_ARGF_RETURN_COPY)
	}
	if a.MaxData {
		d.Flags |= uint8(abi.GenericGenArgFlagsGEN_ARGF_MAX_DATA)
	}
	if h.Kind != HookTracepoint || h.Raw {
		return d, true
	}
	// Tracepoint arguments name format fields; the kernel program reads
	// them by offset, and the argument's position replaces the index.
	if int(a.Index) >= len(fields) {
		c.errorf(path+".index", "tracepoint %s/%s has %d fields (indexes 0 to %d)", h.Subsystem, h.Event, len(fields), len(fields)-1)
		return d, false
	}
	if a.SizeArgIndex != 0 {
		c.errorf(path+".sizeArgIndex", "sizeArgIndex is not supported on tracepoints")
		return d, false
	}
	f := fields[a.Index]
	d.Index = uint8(pos)
	d.TpOffset = f.Offset
	d.TpSize = f.Size
	if strings.HasPrefix(f.Type, "__data_loc") {
		d.Flags |= uint8(abi.GenericGenArgFlagsGEN_ARGF_DATALOC)
		d.Flags &^= uint8(abi.GenericGenArgFlagsGEN_ARGF_USER)
	}
	if a.Type == TypeKernelCapT {
		d.Flags |= uint8(abi.GenericGenArgFlagsGEN_ARGF_TP_PTR)
	}
	return d, true
}

// resolveEntry is the gen_resolves entry of an argument's resolve path.
func (c *compiler) resolveEntry(path string, a Arg) (abi.GenResolve, bool) {
	var r abi.GenResolve
	switch {
	case len(a.Steps) == 0:
		c.errorf(path+".resolve", "resolve %q is found in the kernel's BTF when the policy is validated against it, and it was not", a.Resolve)
		return r, false
	case len(a.Steps) > len(r.Steps):
		c.errorf(path+".resolve", "resolve %q needs %d reads; at most %d", a.Resolve, len(a.Steps), len(r.Steps))
		return r, false
	}
	r.N = uint8(len(a.Steps))
	for j, s := range a.Steps {
		r.Steps[j].Off, r.Steps[j].Size = s.Offset, s.Size
	}
	return r, true
}

// selector compiles one selector; it reports whether it enforces.
func (c *compiler) selector(h *Hook, s *Selector) (abi.GenSelector, bool) {
	var g abi.GenSelector

	filters := append(append([]ArgFilter(nil), s.MatchArgs...), s.MatchReturnArgs...)
	for i, f := range filters {
		path := fmt.Sprintf("%s.matchArgs[%d]", s.Path, i)
		if i >= len(s.MatchArgs) {
			path = fmt.Sprintf("%s.matchReturnArgs[%d]", s.Path, i-len(s.MatchArgs))
		}
		if i >= len(g.Args) {
			c.errorf(path, "at most %d argument filters per selector", len(g.Args))
			break
		}
		g.Args[i] = c.argFilter(path, h, f)
	}
	g.Nargs = uint8(min(len(filters), len(g.Args)))
	orderByCost(g.Args[:g.Nargs])

	for i, b := range s.MatchBinaries {
		path := fmt.Sprintf("%s.matchBinaries[%d]", s.Path, i)
		if i >= len(g.Bins) {
			c.errorf(path, "at most %d matchBinaries entries per selector", len(g.Bins))
			break
		}
		g.Bins[i] = c.binaryFilter(path, b)
	}
	g.Nbins = uint8(min(len(s.MatchBinaries), len(g.Bins)))

	for i, p := range s.MatchPIDs {
		path := fmt.Sprintf("%s.matchPIDs[%d]", s.Path, i)
		if i >= len(g.Pids) {
			c.errorf(path, "at most %d matchPIDs entries per selector", len(g.Pids))
			break
		}
		g.Pids[i] = c.pidFilter(path, p)
	}
	g.Npids = uint8(min(len(s.MatchPIDs), len(g.Pids)))

	for i, n := range s.MatchNamespaces {
		path := fmt.Sprintf("%s.matchNamespaces[%d]", s.Path, i)
		if i >= MaxNamespaceFiltersPerSelector {
			c.errorf(path, "at most %d matchNamespaces entries per selector", MaxNamespaceFiltersPerSelector)
			break
		}
		g.Ns[i] = c.nsFilter(path, n)
	}
	g.Nns = uint8(min(len(s.MatchNamespaces), len(g.Ns)))

	for i, cf := range s.MatchCapabilities {
		path := fmt.Sprintf("%s.matchCapabilities[%d]", s.Path, i)
		if i >= len(g.Caps) {
			c.errorf(path, "at most %d matchCapabilities entries per selector", len(g.Caps))
			break
		}
		g.Caps[i] = abi.GenCapFilter{Set: uint8(capSetCodes[cf.Set]), Negate: b2u(cf.Op == OpNotIn), Mask: cf.Mask}
		if cf.IsNamespaceCapability {
			// As Tetragon: the capabilities are checked only for processes
			// outside the host's user namespace.
			if c.k == nil || c.k.HostNamespace == nil {
				c.errorf(path+".isNamespaceCapability", "the host's user namespace is needed and unknown")
				continue
			}
			ino, err := c.k.HostNamespace(NSUser)
			if err != nil {
				c.errorf(path+".isNamespaceCapability", "the host's user namespace: %v", err)
				continue
			}
			g.Caps[i].HostUserns = ino
		}
	}
	g.Ncaps = uint8(min(len(s.MatchCapabilities), len(g.Caps)))

	enforce := false
	for _, a := range s.Actions {
		switch a.Kind {
		case ActionPost:
			g.Actions |= uint32(abi.GenericGenActionGEN_ACT_POST)
			if a.RateLimit > 0 {
				g.RateMs = uint32(a.RateLimit / time.Millisecond)
			}
		case ActionNoPost:
			g.Actions |= uint32(abi.GenericGenActionGEN_ACT_NOPOST)
		case ActionSigkill:
			g.Actions |= uint32(abi.GenericGenActionGEN_ACT_SIGKILL)
			enforce = true
		case ActionSignal:
			g.Actions |= uint32(abi.GenericGenActionGEN_ACT_SIGNAL)
			g.Signal = uint32(a.Signal)
			enforce = true
		case ActionOverride:
			g.Actions |= uint32(abi.GenericGenActionGEN_ACT_OVERRIDE)
			g.Errno = a.Error
			enforce = true
		case ActionTrackSock, ActionUntrackSock:
			g.Actions |= uint32(abi.GenericGenActionGEN_ACT_TRACK_SOCK)
			if a.Kind == ActionUntrackSock {
				g.Actions ^= uint32(abi.GenericGenActionGEN_ACT_TRACK_SOCK) | uint32(abi.GenericGenActionGEN_ACT_UNTRACK_SOCK)
			}
			g.SockArg = uint8(a.SockParam)
		}
	}
	if g.Actions == 0 {
		g.Actions = uint32(abi.GenericGenActionGEN_ACT_POST)
	}
	g.ExplicitTarget = b2u(c.p.AllowProtectedEnforcement && s.NamesProcessesExactly())
	return g, enforce
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func (c *compiler) argFilter(path string, h *Hook, f ArgFilter) abi.GenArgFilter {
	g := abi.GenArgFilter{Arg: uint8(f.Arg), Negate: b2u(f.Op.Negated())}
	if f.Arg < 0 {
		g.Arg = abi.GenArgReturn
	}
	typ := f.Type
	_, signed := typ.IntSize()
	g.IsSigned = b2u(signed)

	switch f.Op {
	case OpEqual, OpNotEqual:
		if typ.Class() == ClassString || typ.Class() == ClassPath {
			g.Op = uint8(abi.GenericGenOpGEN_OP_STR_EQ)
			g.SetId = c.strSet(path+".values", f.Values, abi.GenericGenOpGEN_OP_STR_EQ)
			g.Value = c.strHeads(g.SetId, f.Values)
			return g
		}
		g.Op = uint8(abi.GenericGenOpGEN_OP_INT_IN)
		g.SetId = c.intSet(f.Ints)
	case OpPrefix, OpNotPrefix:
		g.Op = uint8(abi.GenericGenOpGEN_OP_STR_PREFIX)
		g.SetId = c.strSet(path+".values", f.Values, abi.GenericGenOpGEN_OP_STR_PREFIX)
		g.Value = c.strHeads(g.SetId, f.Values)
	case OpPostfix, OpNotPostfix:
		g.Op = uint8(abi.GenericGenOpGEN_OP_STR_POSTFIX)
		g.SetId = c.strSet(path+".values", f.Values, abi.GenericGenOpGEN_OP_STR_POSTFIX)
		g.Value = c.strTails(g.SetId, f.Values)
	case OpGT, OpLT:
		g.Op = uint8(abi.GenericGenOpGEN_OP_GT)
		if f.Op == OpLT {
			g.Op = uint8(abi.GenericGenOpGEN_OP_LT)
		}
		if len(f.Ints) != 1 {
			c.errorf(path+".values", "%s takes exactly one value", f.Op)
		} else {
			g.Value = f.Ints[0]
		}
	case OpMask:
		g.Op = uint8(abi.GenericGenOpGEN_OP_MASK)
		for _, v := range f.Ints {
			g.Value |= v
		}
	case OpSAddr, OpNotSAddr, OpDAddr, OpNotDAddr:
		g.Op = uint8(abi.GenericGenOpGEN_OP_SADDR)
		if f.Op == OpDAddr || f.Op == OpNotDAddr {
			g.Op = uint8(abi.GenericGenOpGEN_OP_DADDR)
		}
		g.SetId = c.addrSet(f.Prefixes)
	case OpSPort, OpNotSPort, OpDPort, OpNotDPort:
		g.Op = uint8(abi.GenericGenOpGEN_OP_SPORT)
		if f.Op == OpDPort || f.Op == OpNotDPort {
			g.Op = uint8(abi.GenericGenOpGEN_OP_DPORT)
		}
		g.SetId = c.portSet(f.Ports)
	case OpProtocol:
		g.Op = uint8(abi.GenericGenOpGEN_OP_PROTOCOL)
		g.SetId = c.intSet(f.Ints)
	case OpFamily:
		g.Op = uint8(abi.GenericGenOpGEN_OP_FAMILY)
		g.SetId = c.intSet(f.Ints)
	case OpState:
		g.Op = uint8(abi.GenericGenOpGEN_OP_STATE)
		g.SetId = c.intSet(f.Ints)
	default:
		c.errorf(path+".operator", "operator %s cannot be compiled", f.Op)
	}
	return g
}

func (c *compiler) intSet(values []uint64) uint32 {
	id := c.ids.SetID()
	for _, v := range uniqueU64(values) {
		c.out.IntSets = append(c.out.IntSets, abi.GenIntKey{SetId: id, Value: v})
	}
	return id
}

func uniqueU64(v []uint64) []uint64 {
	out := append([]uint64(nil), v...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	n := 0
	for i, x := range out {
		if i == 0 || x != out[n-1] {
			out[n] = x
			n++
		}
	}
	return out[:n]
}

// StrKey builds the set key of a string value for an operator, as the
// kernel looks it up.
func StrKey(setID uint32, value string, op abi.GenOp) (abi.GenStrKey, error) {
	k := abi.GenStrKey{SetId: setID}
	switch op {
	case abi.GenericGenOpGEN_OP_STR_EQ:
		if len(value) > MaxEqualValueLen {
			return k, fmt.Errorf("%q is %d bytes long; Equal and In compare at most %d", value, len(value), MaxEqualValueLen)
		}
		copy(k.Data[:], value)
		k.Prefixlen = uint32(32 + (len(value)+1)*8)
	case abi.GenericGenOpGEN_OP_STR_PREFIX:
		if len(value) > MaxPrefixValueLen {
			return k, fmt.Errorf("%q is %d bytes long; Prefix compares at most %d", value, len(value), MaxPrefixValueLen)
		}
		copy(k.Data[:], value)
		k.Prefixlen = uint32(32 + len(value)*8)
	case abi.GenericGenOpGEN_OP_STR_POSTFIX:
		if len(value) > MaxPostfixValueLen {
			return k, fmt.Errorf("%q is %d bytes long; Postfix compares at most %d", value, len(value), MaxPostfixValueLen)
		}
		for i := 0; i < len(value); i++ {
			k.Data[i] = value[len(value)-1-i]
		}
		k.Prefixlen = uint32(32 + len(value)*8)
	default:
		return k, fmt.Errorf("not a string operator: %d", op)
	}
	return k, nil
}

func (c *compiler) strSet(path string, values []string, op abi.GenOp) uint32 {
	id := c.ids.SetID()
	seen := map[string]bool{}
	for i, v := range values {
		if seen[v] {
			continue
		}
		seen[v] = true
		k, err := StrKey(id, v, op)
		if err != nil {
			c.errorf(fmt.Sprintf("%s[%d]", path, i), "%v", err)
			continue
		}
		c.out.StrSets = append(c.out.StrSets, k)
	}
	return id
}

// maxHead is the longest head the kernel compares (gen_head_key).
const maxHead = len(abi.GenHeadKey{}.Head)

// strHeads adds the heads of a Prefix or Equal set's values: their first n
// bytes, n being the shortest value's length capped at maxHead. It returns
// n, which the filter carries; 0 (a set with an empty value) means the
// kernel has no head to check.
func (c *compiler) strHeads(setID uint32, values []string) uint64 {
	if len(values) == 0 {
		return 0
	}
	n := maxHead
	for _, v := range values {
		n = min(n, len(v))
	}
	if n == 0 {
		return 0
	}
	seen := map[string]bool{}
	for _, v := range values {
		h := v[:n]
		if seen[h] {
			continue
		}
		seen[h] = true
		k := abi.GenHeadKey{SetId: setID, Len: uint32(n)}
		copy(k.Head[:], h)
		c.out.StrHeads = append(c.out.StrHeads, k)
	}
	return uint64(n)
}

// strTails adds the tails of a Postfix set's values to the heads map: their
// last n bytes, in order, n being the shortest value's length capped at
// maxHead. It returns n as strHeads does.
func (c *compiler) strTails(setID uint32, values []string) uint64 {
	if len(values) == 0 {
		return 0
	}
	n := maxHead
	for _, v := range values {
		n = min(n, len(v))
	}
	if n == 0 {
		return 0
	}
	seen := map[string]bool{}
	for _, v := range values {
		t := v[len(v)-n:]
		if seen[t] {
			continue
		}
		seen[t] = true
		k := abi.GenHeadKey{SetId: setID, Len: uint32(n)}
		copy(k.Head[:], t)
		c.out.StrHeads = append(c.out.StrHeads, k)
	}
	return uint64(n)
}

// AddrKey builds the set key of an address prefix; IPv4 is v4-mapped.
func AddrKey(setID uint32, p netip.Prefix) abi.GenAddrKey {
	k := abi.GenAddrKey{SetId: setID}
	addr := p.Addr()
	bits := p.Bits()
	if addr.Is4() {
		bits += 96
		addr = netip.AddrFrom16(addr.As16())
	}
	a := addr.As16()
	copy(k.Addr[:], a[:])
	k.Prefixlen = uint32(32 + bits)
	return k
}

func (c *compiler) addrSet(prefixes []netip.Prefix) uint32 {
	id := c.ids.SetID()
	for _, p := range prefixes {
		c.out.AddrSets = append(c.out.AddrSets, AddrKey(id, p.Masked()))
	}
	return id
}

// PortPrefixes decomposes an inclusive port range into the fewest
// (value, prefix length) pairs on 16 bits that cover exactly the range.
func PortPrefixes(r PortRange) [][2]uint32 {
	var out [][2]uint32
	lo, hi := uint32(r.Min), uint32(r.Max)
	for lo <= hi {
		size := uint32(1)
		bits := uint32(16)
		// Grow the block while it stays aligned and inside the range.
		for bits > 0 {
			next := size << 1
			if lo%next != 0 || lo+next-1 > hi {
				break
			}
			size = next
			bits--
		}
		out = append(out, [2]uint32{lo, bits})
		lo += size
		if lo == 0 {
			break
		}
	}
	return out
}

func (c *compiler) portSet(ranges []PortRange) uint32 {
	id := c.ids.SetID()
	for _, r := range ranges {
		for _, pb := range PortPrefixes(r) {
			c.out.PortSets = append(c.out.PortSets, abi.GenPortKey{
				Prefixlen: 32 + pb[1],
				SetId:     id,
				Port:      hostToNet16(uint16(pb[0])),
			})
		}
	}
	return id
}

// hostToNet16 stores a port so that the trie, which compares bytes in
// memory order, compares it big-endian, as the kernel side writes it.
func hostToNet16(v uint16) uint16 { return v>>8 | v<<8 }

func (c *compiler) binaryFilter(path string, b BinaryFilter) abi.GenBinFilter {
	g := abi.GenBinFilter{Negate: b2u(b.Op.Negated())}
	var op abi.GenOp
	switch b.Op {
	case BinIn, BinNotIn:
		g.Op = uint8(abi.GenericGenBinOpGEN_BIN_IN)
		op = abi.GenericGenOpGEN_OP_STR_EQ
	case BinPrefix, BinNotPrefix:
		g.Op = uint8(abi.GenericGenBinOpGEN_BIN_PREFIX)
		op = abi.GenericGenOpGEN_OP_STR_PREFIX
	case BinPostfix, BinNotPostfix:
		g.Op = uint8(abi.GenericGenBinOpGEN_BIN_POSTFIX)
		op = abi.GenericGenOpGEN_OP_STR_POSTFIX
	}
	g.SetId = c.strSet(path+".values", b.Paths, op)
	if b.FollowChildren {
		if b.Op != BinIn {
			c.errorf(path+".followChildren", "followChildren is supported with the In operator only")
			return g
		}
		bit, err := c.ids.FollowBit()
		if err != nil {
			c.errorf(path+".followChildren", "%v", err)
			return g
		}
		c.out.FollowBits = append(c.out.FollowBits, bit)
		g.Follow, g.FollowBit = 1, bit
		for _, p := range b.Paths {
			c.out.FollowBinaries[p] |= 1 << bit
		}
	}
	return g
}

func (c *compiler) pidFilter(path string, p PIDFilter) abi.GenPIDFilter {
	vals := make([]uint64, len(p.PIDs))
	for i, v := range p.PIDs {
		vals[i] = uint64(v)
	}
	g := abi.GenPIDFilter{Negate: b2u(p.Op == OpNotIn), NsPid: b2u(p.IsNamespacePID), SetId: c.intSet(vals)}
	if p.FollowForks {
		if p.Op != OpIn || p.IsNamespacePID {
			c.errorf(path+".followForks", "followForks is supported with the In operator on host pids only")
			return g
		}
		bit, err := c.ids.FollowBit()
		if err != nil {
			c.errorf(path+".followForks", "%v", err)
			return g
		}
		c.out.FollowBits = append(c.out.FollowBits, bit)
		g.Follow, g.FollowBit = 1, bit
		for _, pid := range p.PIDs {
			c.out.FollowPIDs[pid] |= 1 << bit
		}
	}
	return g
}

func (c *compiler) nsFilter(path string, n NamespaceFilter) abi.GenNSFilter {
	vals := make([]uint64, 0, len(n.Inodes)+1)
	for _, v := range n.Inodes {
		vals = append(vals, uint64(v))
	}
	if n.HostNS {
		if c.k == nil || c.k.HostNamespace == nil {
			c.errorf(path+".values", "host_ns cannot be resolved here")
		} else if inum, err := c.k.HostNamespace(n.Namespace); err != nil {
			c.errorf(path+".values", "host_ns: %v", err)
		} else {
			vals = append(vals, uint64(inum))
		}
	}
	return abi.GenNSFilter{Ns: uint8(nsCodes[n.Namespace]), Negate: b2u(n.Op == OpNotIn), SetId: c.intSet(vals)}
}

// markWholeStrings flags the string arguments that a selector reads whole
// on every call it evaluates: one whose first check, with no process
// filter before it, is a string filter the kernel cannot decide from the
// head (Postfix, or a set with an empty value). The head checks of Prefix
// and Equal filters on such an argument then read it into the record
// first and take the head from there, instead of reading the call's
// memory twice. It changes no verdict.
func markWholeStrings(cfg *abi.GenHook, sels []abi.GenSelector) {
	for _, s := range sels {
		if s.Nargs == 0 || s.Npids+s.Nbins+s.Nns+s.Ncaps > 0 {
			continue
		}
		f := s.Args[0]
		if f.Arg >= cfg.Nargs || f.Negate != 0 {
			continue
		}
		switch abi.GenOp(f.Op) {
		case abi.GenericGenOpGEN_OP_STR_POSTFIX:
		case abi.GenericGenOpGEN_OP_STR_PREFIX, abi.GenericGenOpGEN_OP_STR_EQ:
			if f.Value != 0 {
				continue
			}
		default:
			continue
		}
		d := &cfg.Args[f.Arg]
		if d.Type == uint8(argTypeCodes[TypeString]) && d.Flags&uint8(abi.GenericGenArgFlagsGEN_ARGF_RESOLVE|abi.GenericGenArgFlagsGEN_ARGF_DATALOC|abi.GenericGenArgFlagsGEN_ARGF_RETURN_COPY) == 0 {
			d.Flags |= uint8(abi.GenericGenArgFlagsGEN_ARGF_WHOLE)
		}
	}
}

// orderByCost puts a selector's argument filters in the order the kernel
// evaluates them cheapest: integer comparisons (a register and at most a
// hash lookup) before socket fields, and those before strings (a copy from
// user memory and a trie lookup). The filters of a selector are ANDed, so
// the order changes no verdict, only how soon a call that matches none is
// dismissed: an O_RDONLY open no longer reads its path for a selector that
// also wants O_WRONLY.
func orderByCost(filters []abi.GenArgFilter) {
	cost := func(f abi.GenArgFilter) int {
		switch abi.GenOp(f.Op) {
		case abi.GenericGenOpGEN_OP_STR_EQ, abi.GenericGenOpGEN_OP_STR_PREFIX, abi.GenericGenOpGEN_OP_STR_POSTFIX:
			return 2
		case abi.GenericGenOpGEN_OP_SADDR, abi.GenericGenOpGEN_OP_DADDR, abi.GenericGenOpGEN_OP_SPORT,
			abi.GenericGenOpGEN_OP_DPORT, abi.GenericGenOpGEN_OP_PROTOCOL, abi.GenericGenOpGEN_OP_FAMILY, abi.GenericGenOpGEN_OP_STATE:
			return 1
		}
		return 0
	}
	slices.SortStableFunc(filters, func(a, b abi.GenArgFilter) int { return cost(a) - cost(b) })
}
