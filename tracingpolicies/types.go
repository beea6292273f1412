package tracingpolicies

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vigilsec/vigil/internal/manifest"
)

// The API versions and kinds a TracingPolicy document may carry. Tetragon's
// cilium.io/v1alpha1 documents load unchanged; vigil.dev/v1alpha1 is the
// same schema under our own group.
const (
	APIVersionCilium = "cilium.io/v1alpha1"
	APIVersionVigil  = "vigil.dev/v1alpha1"

	KindTracingPolicy           = "TracingPolicy"
	KindTracingPolicyNamespaced = "TracingPolicyNamespaced"
)

// The types below mirror Tetragon's TracingPolicy schema field by field (the
// JSON names are Tetragon's), so that a strict decode accepts every document
// Tetragon accepts. Fields Vigil does not support are declared too: decoding
// accepts them, and validation rejects them by name unless they hold their
// default value. Nothing is ignored.

// Document is the YAML shape of one TracingPolicy or TracingPolicyNamespaced.
type Document struct {
	manifest.TypeMeta `json:",inline"`
	Metadata          metav1.ObjectMeta `json:"metadata"`
	Spec              Spec              `json:"spec"`
}

// Spec is spec of a TracingPolicy.
type Spec struct {
	KProbes     []KProbeSpec     `json:"kprobes,omitempty"`
	Tracepoints []TracepointSpec `json:"tracepoints,omitempty"`
	LSMHooks    []LSMHookSpec    `json:"lsmhooks,omitempty"`
	UProbes     []UProbeSpec     `json:"uprobes,omitempty"`
	Usdts       []UsdtSpec       `json:"usdts,omitempty"`
	Lists       []ListSpec       `json:"lists,omitempty"`
	Options     []OptionSpec     `json:"options,omitempty"`

	// PodSelector and ContainerSelector restrict the policy to workloads.
	// They are validated when the policy is parsed.
	PodSelector       *metav1.LabelSelector `json:"podSelector,omitempty"`
	ContainerSelector *metav1.LabelSelector `json:"containerSelector,omitempty"`

	// Tetragon fields that Vigil rejects when set.
	Loader          bool                  `json:"loader,omitempty"`
	Fentries        []any                 `json:"fentries,omitempty"`
	Enforcers       []any                 `json:"enforcers,omitempty"`
	SelectorsMacros map[string]any        `json:"selectorsMacros,omitempty"`
	HostSelector    *metav1.LabelSelector `json:"hostSelector,omitempty"`
	NodeSelector    *metav1.LabelSelector `json:"nodeSelector,omitempty"`
}

// KProbeSpec hooks a kernel function or, with syscall, a system call.
type KProbeSpec struct {
	// Call is a kernel function, a syscall spelled sys_NAME (or with its
	// architecture prefix, __x64_sys_NAME), or "list:NAME".
	Call string `json:"call"`
	// Return reports the return value, typed by ReturnArg.
	Return bool `json:"return,omitempty"`
	// Syscall says Call is a system call. Tetragon's CRD defaults it to
	// true, and so do we when it is omitted (except for "list:" calls,
	// where the list's type decides).
	Syscall   *bool          `json:"syscall,omitempty"`
	Message   string         `json:"message,omitempty"`
	Args      []ArgSpec      `json:"args,omitempty"`
	ReturnArg *ArgSpec       `json:"returnArg,omitempty"`
	Selectors []SelectorSpec `json:"selectors,omitempty"`
	Tags      []string       `json:"tags,omitempty"`

	// Tetragon fields that Vigil rejects when set.
	Data            []any         `json:"data,omitempty"`
	ReturnArgAction string        `json:"returnArgAction,omitempty"`
	Ignore          *KProbeIgnore `json:"ignore,omitempty"`
}

// KProbeIgnore is Tetragon's ignore block; Vigil rejects callNotFound.
type KProbeIgnore struct {
	CallNotFound bool `json:"callNotFound,omitempty"`
}

// TracepointSpec hooks a kernel tracepoint, such as raw_syscalls/sys_enter.
type TracepointSpec struct {
	Subsystem string `json:"subsystem"`
	Event     string `json:"event"`
	Message   string `json:"message,omitempty"`
	// Args index the tracepoint's format fields, counting the four
	// common_* fields, as in Tetragon.
	Args      []ArgSpec      `json:"args,omitempty"`
	Selectors []SelectorSpec `json:"selectors,omitempty"`
	Tags      []string       `json:"tags,omitempty"`

	// Raw (raw tracepoint arguments) is rejected when true.
	Raw bool `json:"raw,omitempty"`
}

// LSMHookSpec hooks an LSM hook (file_open, bprm_check_security, ...).
type LSMHookSpec struct {
	Hook      string         `json:"hook"`
	Message   string         `json:"message,omitempty"`
	Args      []ArgSpec      `json:"args,omitempty"`
	Selectors []SelectorSpec `json:"selectors,omitempty"`
	Tags      []string       `json:"tags,omitempty"`
}

// UProbeSpec hooks functions of an executable or shared library: by symbol
// (found in the file's ELF symbol tables) or by offset in the file.
type UProbeSpec struct {
	// Path is the absolute path of the executable or library.
	Path    string   `json:"path"`
	Symbols []string `json:"symbols,omitempty"`
	// Offsets are file offsets, one probe each: a uprobe names Symbols or
	// Offsets, not both.
	Offsets []uint64 `json:"offsets,omitempty"`
	// RefCtrOffsets are the file offsets of semaphores (reference
	// counters) the kernel increments while the probe is attached, one per
	// symbol or offset.
	RefCtrOffsets []uint64       `json:"refCtrOffsets,omitempty"`
	Message       string         `json:"message,omitempty"`
	Args          []ArgSpec      `json:"args,omitempty"`
	Selectors     []SelectorSpec `json:"selectors,omitempty"`
	Tags          []string       `json:"tags,omitempty"`

	// Tetragon fields that Vigil rejects when set.
	BTFPath       string   `json:"btfPath,omitempty"`
	Addrs         []uint64 `json:"addrs,omitempty"`
	Data          []any    `json:"data,omitempty"`
	Return        bool     `json:"return,omitempty"`
	ReturnArg     *ArgSpec `json:"returnArg,omitempty"`
	BinaryDigests []string `json:"binaryDigests,omitempty"`
	Ignore        any      `json:"ignore,omitempty"`
}

// UsdtSpec hooks a USDT probe (a SystemTap SDT marker) of an executable or
// library, named by its provider and name in the file's .note.stapsdt.
type UsdtSpec struct {
	Path      string         `json:"path"`
	Provider  string         `json:"provider"`
	Name      string         `json:"name"`
	Message   string         `json:"message,omitempty"`
	Args      []ArgSpec      `json:"args,omitempty"`
	Selectors []SelectorSpec `json:"selectors,omitempty"`
	Tags      []string       `json:"tags,omitempty"`

	// Tetragon fields that Vigil rejects when set.
	BTFPath string `json:"btfPath,omitempty"`
}

// ArgSpec describes one argument to read.
type ArgSpec struct {
	Index uint32 `json:"index"`
	Type  string `json:"type"`
	Label string `json:"label,omitempty"`
	// SizeArgIndex is 1-based, as in Tetragon: the size of a char_buf or
	// char_iovec is the argument at index SizeArgIndex-1. Zero means none.
	SizeArgIndex uint32 `json:"sizeArgIndex,omitempty"`
	ReturnCopy   bool   `json:"returnCopy,omitempty"`
	MaxData      bool   `json:"maxData,omitempty"`

	// Tetragon fields that Vigil rejects when set.
	Resolve       string `json:"resolve,omitempty"`
	Source        string `json:"source,omitempty"`
	BTFType       string `json:"btfType,omitempty"`
	BTFTypeModule string `json:"btfTypeModule,omitempty"`
}

// SelectorSpec is one selector: its filters are ANDed, the selectors of a
// hook are ORed and the first one that matches decides the actions.
type SelectorSpec struct {
	Label             string               `json:"label,omitempty"`
	MatchPIDs         []PIDSelector        `json:"matchPIDs,omitempty"`
	MatchArgs         []ArgSelector        `json:"matchArgs,omitempty"`
	MatchReturnArgs   []ArgSelector        `json:"matchReturnArgs,omitempty"`
	MatchBinaries     []BinarySelector     `json:"matchBinaries,omitempty"`
	MatchNamespaces   []NamespaceSelector  `json:"matchNamespaces,omitempty"`
	MatchCapabilities []CapabilitySelector `json:"matchCapabilities,omitempty"`
	MatchActions      []ActionSelector     `json:"matchActions,omitempty"`

	// Tetragon fields that Vigil rejects when set.
	MatchData              []any          `json:"matchData,omitempty"`
	MatchReturnActions     []any          `json:"matchReturnActions,omitempty"`
	MatchParentBinaries    []any          `json:"matchParentBinaries,omitempty"`
	MatchNamespaceChanges  []any          `json:"matchNamespaceChanges,omitempty"`
	MatchCapabilityChanges []any          `json:"matchCapabilityChanges,omitempty"`
	MatchWorkloads         map[string]any `json:"matchWorkloads,omitempty"`
	Macros                 []string       `json:"macros,omitempty"`
}

// PIDSelector filters on the process ID.
type PIDSelector struct {
	Operator       string   `json:"operator"`
	Values         []uint32 `json:"values"`
	IsNamespacePID bool     `json:"isNamespacePID,omitempty"`
	FollowForks    bool     `json:"followForks,omitempty"`
}

// ArgSelector filters on an argument (or, in matchReturnArgs, the return
// value).
type ArgSelector struct {
	// Index is the argument's index in the hook's parameters (or the
	// tracepoint's fields); an entry of args must read it.
	Index uint32 `json:"index"`
	// Args, when set, names the argument by its position in args instead.
	Args     []uint32 `json:"args,omitempty"`
	Operator string   `json:"operator"`
	Values   []string `json:"values,omitempty"`
}

// BinarySelector filters on the path of the process's executable.
type BinarySelector struct {
	Operator       string   `json:"operator"`
	Values         []string `json:"values"`
	FollowChildren bool     `json:"followChildren,omitempty"`
}

// NamespaceSelector filters on a Linux namespace inode.
type NamespaceSelector struct {
	Namespace string   `json:"namespace"`
	Operator  string   `json:"operator"`
	Values    []string `json:"values"`
}

// CapabilitySelector filters on the process's capabilities.
type CapabilitySelector struct {
	Type                  string   `json:"type,omitempty"`
	Operator              string   `json:"operator"`
	IsNamespaceCapability bool     `json:"isNamespaceCapability,omitempty"`
	Values                []string `json:"values"`
}

// ActionSelector is one action of a selector.
type ActionSelector struct {
	Action string `json:"action"`
	// ArgError is the (negative) errno an Override returns.
	ArgError int32 `json:"argError,omitempty"`
	// ArgSig is the signal a Signal action sends: a number (9) or a name
	// (SIGKILL, KILL). Tetragon accepts numbers only.
	ArgSig string `json:"argSig,omitempty"`
	// RateLimit limits Post to one event per period per process: "30",
	// "30s", "5m" or "1h" (a bare number is seconds).
	RateLimit      string `json:"rateLimit,omitempty"`
	RateLimitScope string `json:"rateLimitScope,omitempty"`

	// Tetragon fields that Vigil rejects when set.
	ArgURL           string   `json:"argUrl,omitempty"`
	ArgFqdn          string   `json:"argFqdn,omitempty"`
	ArgSock          uint32   `json:"argSock,omitempty"`
	ArgIndex         uint32   `json:"argIndex,omitempty"`
	ArgValue         uint32   `json:"argValue,omitempty"`
	ArgRegs          []string `json:"argRegs,omitempty"`
	ArgNewSymbol     string   `json:"argNewSymbol,omitempty"`
	ArgNewAddr       uint64   `json:"argNewAddr,omitempty"`
	ArgNewOffset     int64    `json:"argNewOffset,omitempty"`
	KernelStackTrace bool     `json:"kernelStackTrace,omitempty"`
	UserStackTrace   bool     `json:"userStackTrace,omitempty"`
	ImaHash          bool     `json:"imaHash,omitempty"`
}

// ListSpec is a named list of functions or syscalls, used as "list:NAME"
// in a kprobe's call.
type ListSpec struct {
	Name   string   `json:"name"`
	Values []string `json:"values,omitempty"`
	// Type is "" (kernel functions) or "syscalls".
	Type string `json:"type,omitempty"`

	// Tetragon fields that Vigil rejects when set.
	Pattern   *string `json:"pattern,omitempty"`
	Validated bool    `json:"validated,omitempty"`
}

// OptionSpec is one entry of spec.options.
type OptionSpec struct {
	Name  string `json:"name"`
	Value string `json:"value,omitempty"`
}
