package tracingpolicies

import (
	"net/netip"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/vigilsec/vigil/internal/manifest"
	"github.com/vigilsec/vigil/kprobes"
)

// Mode says whether a policy's enforcement actions (Sigkill, Signal,
// Override) are carried out or only reported.
type Mode string

const (
	// ModeEnforce carries out enforcement actions. It is the default, as
	// in Tetragon.
	ModeEnforce Mode = "enforce"
	// ModeMonitor reports what enforcement would have done, and does not
	// do it.
	ModeMonitor Mode = "monitor"
)

// Option names Vigil understands in spec.options.
const (
	// OptionPolicyMode is "enforce" or "monitor".
	OptionPolicyMode = "policy-mode"
	// OptionAllowUnrestrictedEnforcement, set to "true", lets a policy
	// kill or deny on a hook every process passes through (exec, fork,
	// raw syscall entry) without a filter that restricts it.
	OptionAllowUnrestrictedEnforcement = "allow-unrestricted-enforcement"
	// OptionAllowProtectedEnforcement, set to "true", lets the selectors
	// of a policy that name processes exactly (matchBinaries In,
	// matchPIDs In host PIDs) kill, signal or deny protected processes:
	// PID 1, the agent's parents, the container runtimes and kubelet.
	OptionAllowProtectedEnforcement = "allow-protected-enforcement"
	// OptionRepeatedEvents says what becomes of identical calls of a
	// process (same hook, selector, arguments, return value and action):
	// "fold" (the default: the first is reported at once, the repeats as
	// one event per second with their count), "rate-limit=DURATION" (the
	// same, one event per DURATION at most) or "report-all".
	OptionRepeatedEvents = "repeated-events"
)

// Repeats is what becomes of a policy's repeated identical events.
type Repeats struct {
	// ReportAll reports every call; otherwise the repeats of a call are
	// counted in the kernel and reported every Window.
	ReportAll bool
	Window    time.Duration
}

// DefaultFoldWindow is how often folded repeats are reported by default.
const DefaultFoldWindow = time.Second

// HookKind is the kind of kernel hook a policy entry asks for.
type HookKind string

const (
	// HookKprobe is a kernel function (spec.kprobes with syscall: false).
	HookKprobe HookKind = "kprobe"
	// HookSyscall is a system call (spec.kprobes with syscall: true).
	HookSyscall HookKind = "syscall"
	// HookTracepoint is a tracepoint (spec.tracepoints).
	HookTracepoint HookKind = "tracepoint"
	// HookLSM is an LSM hook (spec.lsmhooks).
	HookLSM HookKind = "lsm"
	// HookUprobe is a function of an executable or library (spec.uprobes).
	HookUprobe HookKind = "uprobe"
	// HookUsdt is a USDT probe (spec.usdts).
	HookUsdt HookKind = "usdt"
)

// Policy is one parsed and validated TracingPolicy document. Everything in
// it has been checked; what depends on the running kernel is checked by
// Validate.
type Policy struct {
	// Doc is the source document; Doc.Errorf(path, ...) locates a problem
	// found later (by the compiler or the loader) at its line.
	Doc *manifest.Document
	// Kind is KindTracingPolicy or KindTracingPolicyNamespaced.
	Kind      string
	Name      string
	Namespace string
	// Mode is the mode from spec.options (policy-mode), ModeEnforce by
	// default.
	Mode Mode
	// AllowUnrestrictedEnforcement is the allow-unrestricted-enforcement
	// option.
	AllowUnrestrictedEnforcement bool
	// AllowProtectedEnforcement is the allow-protected-enforcement option.
	AllowProtectedEnforcement bool
	// Repeats is the repeated-events option.
	Repeats Repeats
	// PodSelector and ContainerSelector restrict the workloads the policy
	// applies to; nil selects everything. Pods are matched on their labels
	// plus PodNamespaceLabel (their namespace); containers on "name" and
	// "repo" (the image repository).
	PodSelector       labels.Selector
	ContainerSelector labels.Selector
	// Hooks are the hooks the policy asks for, in document order:
	// kprobes, then tracepoints, then LSM hooks, then uprobes.
	Hooks []*Hook
	// Warnings are problems that do not make the policy invalid.
	Warnings manifest.Errors
	// Spec is the decoded spec, as written.
	Spec Spec
}

// Enforces reports whether any selector of the policy has an enforcement
// action (Sigkill, Signal or Override).
func (p *Policy) Enforces() bool {
	for _, h := range p.Hooks {
		for _, s := range h.Selectors {
			if s.Enforces() {
				return true
			}
		}
	}
	return false
}

// Hook is one entry of spec.kprobes, spec.tracepoints or spec.lsmhooks,
// resolved: lists expanded, syscall names stripped of their prefix, types
// and operators in canonical form, values parsed.
type Hook struct {
	Kind HookKind
	// Path is the entry's field path, such as spec.kprobes[2].
	Path string
	// Functions are what to attach to: kernel function names (kprobe),
	// syscall names without prefix such as "openat" (syscall), or the
	// LSM hook name such as "file_open" (lsm). A "list:" call expands to
	// several. Empty for tracepoints.
	Functions []string
	// Binary is the executable or library of a uprobe; Functions are its
	// symbols, or Offsets its file offsets, one probe each.
	// RefCtrOffsets, when set, are the probes' semaphores.
	Binary        string
	Offsets       []uint64
	RefCtrOffsets []uint64
	// Provider and Probe name a USDT probe of Binary; Validate finds its
	// sites (one per place the probe is in the code), which the compiler
	// needs.
	Provider, Probe string
	Sites           []USDTSite
	// Subsystem and Event name a tracepoint.
	Subsystem string
	Event     string
	// Raw is a raw tracepoint (raw: true): Args index the tracepoint's
	// own arguments (its TP_PROTO, as in the btf_trace_EVENT type), not
	// the fields of its record.
	Raw bool
	// Return asks for the return value (kprobes and syscalls), read as
	// ReturnArg.
	Return    bool
	ReturnArg *Arg
	// ReturnArgAction is ActionTrackSock or ActionUntrackSock for the
	// socket the call returns, or "".
	ReturnArgAction ActionKind
	Message         string
	Tags            []string
	Args            []Arg
	Selectors       []Selector
	// Mechanism, when set by a program (never by a document), asks for
	// that attach mechanism instead of the one the kernel's plan prefers:
	// benchmarks compare them with it.
	Mechanism kprobes.Mechanism
}

// Arg is an argument to read.
type Arg struct {
	// Index is the parameter index (for tracepoints, the format field
	// index, counting the common_* fields).
	Index uint32
	Type  ArgType
	Label string
	// SizeArgIndex is 1-based as in Tetragon (0: none): the size of a
	// char_buf or char_iovec is parameter SizeArgIndex-1.
	SizeArgIndex uint32
	ReturnCopy   bool
	MaxData      bool
	// Resolve is a path of fields to read through the parameter's
	// structures ("mm.owner.real_parent.comm"), starting from the struct
	// BTFType when set. Validate compiles it against the kernel's BTF
	// into Steps, which the compiler needs.
	Resolve string
	BTFType string
	Steps   []ResolveStep
}

// Selector is one resolved selector. Its filters are ANDed; a hook's
// selectors are tried in order and the first that matches decides.
type Selector struct {
	// Path is the selector's field path, such as
	// spec.kprobes[0].selectors[1].
	Path              string
	Label             string
	MatchArgs         []ArgFilter
	MatchReturnArgs   []ArgFilter
	MatchBinaries     []BinaryFilter
	MatchPIDs         []PIDFilter
	MatchNamespaces   []NamespaceFilter
	MatchCapabilities []CapabilityFilter
	// Actions are the selector's actions; Post when none are written.
	Actions []Action
}

// Enforces reports whether the selector has a Sigkill, Signal or Override
// action.
func (s *Selector) Enforces() bool {
	for _, a := range s.Actions {
		if a.Kind.Enforces() {
			return true
		}
	}
	return false
}

// NamesProcessesExactly reports whether the selector can only match
// processes it names: it has a matchBinaries In entry (exact paths) without
// followChildren, or a matchPIDs In entry of host PIDs without followForks.
// Such a selector may act on protected processes when its policy sets
// allow-protected-enforcement.
func (s *Selector) NamesProcessesExactly() bool {
	for _, b := range s.MatchBinaries {
		if b.Op == BinIn && !b.FollowChildren {
			return true
		}
	}
	for _, p := range s.MatchPIDs {
		if p.Op == OpIn && !p.IsNamespacePID && !p.FollowForks {
			return true
		}
	}
	return false
}

// ArgFilter is one matchArgs or matchReturnArgs entry.
type ArgFilter struct {
	// Index is the parameter index of the argument (unused for return
	// values).
	Index uint32
	// Arg is the argument's position in Hook.Args, or -1 for the return
	// value (Hook.ReturnArg).
	Arg  int
	Type ArgType
	Op   Operator
	// Values are the values as written (for string and path operators,
	// the strings to compare).
	Values []string
	// Ints holds the parsed numbers for integer operators (Equal,
	// NotEqual, GT, LT, Mask on integer types; Protocol; Family; masks of
	// kernel_cap_t). Signed values are sign-extended to 64 bits.
	Ints []uint64
	// Ports holds SPort/DPort/NotSPort/NotDPort ranges.
	Ports []PortRange
	// Prefixes holds SAddr/DAddr/NotSAddr/NotDAddr addresses; a single
	// address is a /32 or /128.
	Prefixes []netip.Prefix
}

// PortRange is an inclusive range of ports; a single port has Min == Max.
type PortRange struct {
	Min, Max uint16
}

// BinaryFilter is one matchBinaries entry.
type BinaryFilter struct {
	Op             BinaryOperator
	Paths          []string
	FollowChildren bool
}

// PIDFilter is one matchPIDs entry.
type PIDFilter struct {
	Op             SetOperator
	PIDs           []uint32
	FollowForks    bool
	IsNamespacePID bool
}

// NamespaceType is a Linux namespace kind, spelled as in Tetragon.
type NamespaceType string

const (
	NSUts             NamespaceType = "Uts"
	NSIpc             NamespaceType = "Ipc"
	NSMnt             NamespaceType = "Mnt"
	NSPid             NamespaceType = "Pid"
	NSPidForChildren  NamespaceType = "PidForChildren"
	NSNet             NamespaceType = "Net"
	NSTime            NamespaceType = "Time"
	NSTimeForChildren NamespaceType = "TimeForChildren"
	NSCgroup          NamespaceType = "Cgroup"
	NSUser            NamespaceType = "User"
)

// NamespaceTypes lists the namespace kinds.
var NamespaceTypes = []NamespaceType{NSUts, NSIpc, NSMnt, NSPid, NSPidForChildren, NSNet, NSTime, NSTimeForChildren, NSCgroup, NSUser}

// NamespaceFilter is one matchNamespaces entry.
type NamespaceFilter struct {
	Namespace NamespaceType
	Op        SetOperator
	// Inodes are the namespace inode numbers listed.
	Inodes []uint32
	// HostNS is set when "host_ns" is listed: the agent resolves it to
	// the namespace of PID 1 on the node.
	HostNS bool
}

// CapabilitySet is the capability set a matchCapabilities entry checks.
type CapabilitySet string

const (
	CapEffective   CapabilitySet = "Effective"
	CapInheritable CapabilitySet = "Inheritable"
	CapPermitted   CapabilitySet = "Permitted"
)

// CapabilityFilter is one matchCapabilities entry.
type CapabilityFilter struct {
	Set                   CapabilitySet
	Op                    SetOperator
	IsNamespaceCapability bool
	// Mask has bit N set for capability N (CAP_CHOWN is bit 0).
	Mask uint64
}

// ActionKind is a selector action.
type ActionKind string

const (
	ActionPost     ActionKind = "Post"
	ActionNoPost   ActionKind = "NoPost"
	ActionSigkill  ActionKind = "Sigkill"
	ActionSignal   ActionKind = "Signal"
	ActionOverride ActionKind = "Override"
	// ActionTrackSock and ActionUntrackSock remember and forget which
	// process a socket (the argument at position argSock, a sock) belongs
	// to: events whose first sock argument is tracked are that process's.
	ActionTrackSock   ActionKind = "TrackSock"
	ActionUntrackSock ActionKind = "UntrackSock"
)

// Enforces reports whether the action changes what the process does.
func (k ActionKind) Enforces() bool {
	return k == ActionSigkill || k == ActionSignal || k == ActionOverride
}

// Action is one resolved action.
type Action struct {
	Kind ActionKind
	// RateLimit (Post): at most one event per period per process (thread
	// group) and selector; zero means no limit.
	RateLimit time.Duration
	// Signal (Signal) is the signal number, 1 to 64.
	Signal int
	// Error (Override) is the negative errno the call returns.
	Error int32
	// SockParam (TrackSock, UntrackSock) is the parameter index of the
	// socket.
	SockParam uint32
}
