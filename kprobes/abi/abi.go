package abi

import "unsafe"

// Record opcodes: the first byte of every record of the shared ring buffer
// (enum vigil_op in lib/common.h).
const (
	OpExec    = uint8(ProcessVigilOpVIGIL_OP_EXEC)
	OpExit    = uint8(ProcessVigilOpVIGIL_OP_EXIT)
	OpFork    = uint8(ProcessVigilOpVIGIL_OP_FORK)
	OpGeneric = uint8(ProcessVigilOpVIGIL_OP_GENERIC)
	OpFlow    = uint8(ProcessVigilOpVIGIL_OP_FLOW)
	OpDNS     = uint8(ProcessVigilOpVIGIL_OP_DNS)
	// OpMax bounds the opcodes; loss counters are indexed by opcode.
	OpMax = int(ProcessVigilOpVIGIL_OP_MAX)
)

// Process lifecycle records and maps (process.bpf.c, lib/process.h).
type (
	EventHeader   = ProcessEventHeader
	ExecEvent     = ProcessExecEvent
	ExitEvent     = ProcessExitEvent
	ForkEvent     = ProcessForkEvent
	ExecFlags     = ProcessExecFlags
	ProcEntry     = ProcessProcEntry
	BinaryKey     = ProcessBinaryKey
	ProcessConfig = ProcessProcessConfig
	// ReaderState is what the programs and the ring buffer's reader share
	// through memory mapping: the reader's wakeup request and the loss
	// counters.
	ReaderState = ProcessReaderState
	// Creds are a task's ids and capability sets (lib/task.h), in exec
	// records and as the value of cred arguments.
	Creds = ProcessTaskCreds
)

// Tracing-policy maps and records (generic.bpf.c, lib/generic.h).
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
	GenHeadKey    = GenericGenHeadKey
	GenFoldKey    = GenericGenFoldKey
	GenFold       = GenericGenFold
	GenRepeats    = GenericGenRepeats
	GenAddrKey    = GenericGenAddrKey
	GenPortKey    = GenericGenPortKey
	GenScopeKey   = GenericGenScopeKey
	GenEvent      = GenericGenEvent
	GenFileArg    = GenericGenFileArg
	GenSockArg    = GenericGenSockArg
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
	GenResolve    = GenericGenResolve
	GenUsdt       = GenericGenUsdt
	GenUsdtArg    = GenericGenUsdtArg
)

// Where a USDT argument is (enum gen_usdt_kind).
const (
	GenUsdtNone  uint8 = 0
	GenUsdtConst uint8 = 1
	GenUsdtReg   uint8 = 2
	GenUsdtDeref uint8 = 3
)

// Limits of the compiled tracing-policy form (enum gen_limit).
const (
	GenMaxHooks     = int(GenericGenLimitGEN_MAX_HOOKS)
	GenMaxPolicies  = int(GenericGenLimitGEN_MAX_POLICIES)
	GenMaxArgs      = int(GenericGenLimitGEN_MAX_ARGS)
	GenMaxSelectors = uint32(GenericGenLimitGEN_MAX_SELECTORS) // selector keys are hook id * GenMaxSelectors + index
	GenArgReturn    = uint8(GenericGenLimitGEN_ARG_RETURN)     // the arg index of matchReturnArgs filters
	GenStrMax       = int(GenericGenLimitGEN_STR_MAX)
	GenMaxResolve   = int(GenericGenLimitGEN_MAX_RESOLVE) // steps of a resolve path; gen_resolves keys are hook id * GenMaxArgs + argument
)

// Flow records (flow.bpf.c).
type (
	FlowEvent     = FlowFlowEvent
	FlowPhase     = FlowFlowPhase
	FlowDirection = FlowFlowDirection
	FlowReport    = FlowFlowReport
)

// DNS visibility records (dnsvis.bpf.c): the head of a DNS message a local
// socket sent or received.
type (
	DNSEvent     = DnsvisDnsEvent
	DNSDirection = DnsvisDnsvisDirection
	DNSStat      = DnsvisDnsvisStat
)

// DNSEventHead is the size of a DNS record without its message bytes.
const DNSEventHead = int(unsafe.Offsetof(DNSEvent{}.Data))

// Network-policy datapath maps and records (netpol.bpf.c) keep their
// generated names (Netpol*): only networkpolicy/datapath uses them.
