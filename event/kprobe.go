package event

import (
	"net/netip"
	"time"
)

// Kprobe is the type-specific part of process_kprobe, process_tracepoint,
// process_lsm, process_uprobe and process_usdt events: a call that matched a tracing
// policy's selectors.
type Kprobe struct {
	// FunctionName is the hooked kernel function, syscall, LSM hook,
	// tracepoint ("subsystem/event") or, for a uprobe, the symbol (empty
	// for a probe at a file offset).
	FunctionName string
	// UprobePath is a uprobe's or USDT probe's executable or library, and
	// UprobeOffset the file offset of a uprobe placed by offset.
	UprobePath   string
	UprobeOffset uint64
	// UsdtProvider is a USDT probe's provider; FunctionName is its name.
	UsdtProvider string
	// Mechanism is how the hook was attached: kprobe, kprobe.multi, fentry,
	// fexit, fmod_ret, lsm, tracepoint, raw_tracepoint.
	Mechanism string
	Args      []Arg
	// Return is set for return probes.
	Return *Arg
	// Action is the action taken, for example KPROBE_ACTION_POST or
	// KPROBE_ACTION_SIGKILL.
	Action string
	// Monitor is set when the policy is in monitor mode: Action was not
	// taken, it is what would have been done.
	Monitor bool
	// ActionNote explains the limits of the action, for example that a
	// Sigkill on a syscall entry does not stop the call.
	ActionNote string
	// Errno is the error returned to the caller by an Override action.
	Errno      int32
	Signal     uint32
	PolicyName string
	Message    string
	Tags       []string
	// Repeats, when set, makes the event the report of identical calls of
	// its process that were folded in the kernel after the first one was
	// reported: how many, between which times.
	Repeats *Repeats
}

// Repeats counts calls identical to an event's (same hook, selector,
// arguments, return value and action, same process image).
type Repeats struct {
	Count       uint64
	First, Last time.Time
}

func (k *Kprobe) clone() *Kprobe {
	c := *k
	c.Args = append([]Arg(nil), k.Args...)
	if k.Return != nil {
		r := *k.Return
		c.Return = &r
	}
	if k.Repeats != nil {
		r := *k.Repeats
		c.Repeats = &r
	}
	return &c
}

// ArgKind selects which field of an Arg holds the value and names its JSON key.
type ArgKind uint8

const (
	ArgInt ArgKind = iota + 1
	ArgUint
	ArgSize
	ArgString
	ArgBytes
	ArgFile
	ArgPath
	ArgSock
	ArgSkb
	ArgSockaddr
	ArgCred
	ArgBinprm
	ArgCapability
	ArgKernelCapT
	// ArgLong is a 64-bit signed integer (Tetragon's long_arg); ArgInt
	// holds integers of 32 bits or fewer (int_arg), ArgUint unsigned ones
	// of 32 bits or fewer (uint_arg) and ArgSize unsigned 64-bit ones
	// (size_arg).
	ArgLong
)

var argKindKeys = [...]string{
	ArgInt:        "int_arg",
	ArgUint:       "uint_arg",
	ArgSize:       "size_arg",
	ArgString:     "string_arg",
	ArgBytes:      "bytes_arg",
	ArgFile:       "file_arg",
	ArgPath:       "path_arg",
	ArgSock:       "sock_arg",
	ArgSkb:        "skb_arg",
	ArgSockaddr:   "sockaddr_arg",
	ArgCred:       "process_credentials_arg",
	ArgBinprm:     "linux_binprm_arg",
	ArgCapability: "capability_arg",
	ArgKernelCapT: "kernel_cap_t_arg",
	ArgLong:       "long_arg",
}

// Key returns the JSON key of the argument kind, for example "file_arg".
func (k ArgKind) Key() string {
	if int(k) < len(argKindKeys) && argKindKeys[k] != "" {
		return argKindKeys[k]
	}
	return "unknown_arg"
}

// Arg is one typed argument of a policy event.
type Arg struct {
	Kind  ArgKind
	Label string

	Int  int64
	Uint uint64
	// Str holds string values and the path of file, path and binprm args.
	Str       string
	Bytes     []byte
	Truncated bool
	// Flags are the open flags of a file, or permission bits of a path.
	Flags uint32
	Sock  *Sock
	Cred  *Credentials
}

// Sock describes a socket or a socket address.
type Sock struct {
	Family   uint16
	Type     uint16
	Protocol uint16
	State    uint8
	Saddr    netip.Addr
	Daddr    netip.Addr
	Sport    uint16
	Dport    uint16
	Cookie   uint64
}
