package tracingpolicies

import "sort"

// ArgType is the canonical name of an argument type. Tetragon's aliases
// (sint32, int, long, ulong, ...) are mapped onto these when a policy is
// parsed.
type ArgType string

// The argument types Vigil reads.
const (
	TypeInt8       ArgType = "int8"
	TypeUint8      ArgType = "uint8"
	TypeInt16      ArgType = "int16"
	TypeUint16     ArgType = "uint16"
	TypeInt32      ArgType = "int32"
	TypeUint32     ArgType = "uint32"
	TypeInt64      ArgType = "int64"
	TypeUint64     ArgType = "uint64"
	TypeSizeT      ArgType = "size_t"
	TypeCapability ArgType = "capability"

	TypeString    ArgType = "string"
	TypeCharBuf   ArgType = "char_buf"
	TypeCharIovec ArgType = "char_iovec"

	TypeFd          ArgType = "fd"
	TypeFile        ArgType = "file"
	TypePath        ArgType = "path"
	TypeFilename    ArgType = "filename"
	TypeLinuxBinprm ArgType = "linux_binprm"
	// TypeDentry is the path of a dentry within its file system (no
	// mount is known), as Tetragon reports it.
	TypeDentry ArgType = "dentry"

	TypeSock     ArgType = "sock"
	TypeSocket   ArgType = "socket"
	TypeSockaddr ArgType = "sockaddr"
	TypeSkb      ArgType = "skb"

	TypeCred       ArgType = "cred"
	TypeKernelCapT ArgType = "kernel_cap_t"

	// TypeSyscall64 is a syscall number (raw_syscalls tracepoints): an
	// int64 with bit 31 set for a 32-bit compat syscall, as in Tetragon.
	TypeSyscall64 ArgType = "syscall64"
	// TypeNop holds an argument's place: it is neither read nor reported.
	TypeNop ArgType = "nop"
)

// ArgClass groups argument types by what can be matched on them.
type ArgClass int

const (
	// ClassInteger types are compared as numbers.
	ClassInteger ArgClass = iota
	// ClassString types are compared as strings (string, char_buf,
	// char_iovec).
	ClassString
	// ClassPath types are resolved to a path and compared as strings (fd,
	// file, path, filename, linux_binprm).
	ClassPath
	// ClassNetwork types carry addresses, ports, protocol and family.
	ClassNetwork
	// ClassCapabilities is a capability set (kernel_cap_t).
	ClassCapabilities
	// ClassOpaque types are reported but cannot be matched (cred).
	ClassOpaque
)

type argTypeInfo struct {
	class ArgClass
	// size in bytes and signedness, for integers.
	size   int
	signed bool
}

var argTypes = map[ArgType]argTypeInfo{
	TypeInt8:       {ClassInteger, 1, true},
	TypeUint8:      {ClassInteger, 1, false},
	TypeInt16:      {ClassInteger, 2, true},
	TypeUint16:     {ClassInteger, 2, false},
	TypeInt32:      {ClassInteger, 4, true},
	TypeUint32:     {ClassInteger, 4, false},
	TypeInt64:      {ClassInteger, 8, true},
	TypeUint64:     {ClassInteger, 8, false},
	TypeSizeT:      {ClassInteger, 8, false},
	TypeCapability: {ClassInteger, 4, true},

	TypeString:    {class: ClassString},
	TypeCharBuf:   {class: ClassString},
	TypeCharIovec: {class: ClassString},

	TypeFd:          {class: ClassPath},
	TypeFile:        {class: ClassPath},
	TypePath:        {class: ClassPath},
	TypeFilename:    {class: ClassPath},
	TypeLinuxBinprm: {class: ClassPath},
	TypeDentry:      {class: ClassPath},

	TypeSock:     {class: ClassNetwork},
	TypeSocket:   {class: ClassNetwork},
	TypeSockaddr: {class: ClassNetwork},
	TypeSkb:      {class: ClassNetwork},

	TypeCred:       {class: ClassOpaque},
	TypeKernelCapT: {class: ClassCapabilities},

	TypeSyscall64: {ClassInteger, 8, true},
	TypeNop:       {class: ClassOpaque},
}

// argTypeAliases maps every spelling Tetragon accepts for a supported type
// to its canonical name.
var argTypeAliases = map[string]ArgType{
	"int8": TypeInt8, "sint8": TypeInt8,
	"uint8": TypeUint8,
	"int16": TypeInt16, "sint16": TypeInt16,
	"uint16": TypeUint16,
	"int":    TypeInt32, "int32": TypeInt32, "sint32": TypeInt32,
	"uint32": TypeUint32,
	"long":   TypeInt64, "int64": TypeInt64, "sint64": TypeInt64,
	"ulong": TypeUint64, "uint64": TypeUint64,
	"size_t":       TypeSizeT,
	"capability":   TypeCapability,
	"string":       TypeString,
	"char_buf":     TypeCharBuf,
	"char_iovec":   TypeCharIovec,
	"fd":           TypeFd,
	"file":         TypeFile,
	"path":         TypePath,
	"filename":     TypeFilename,
	"linux_binprm": TypeLinuxBinprm,
	"dentry":       TypeDentry,
	"sock":         TypeSock,
	"socket":       TypeSocket,
	"sockaddr":     TypeSockaddr,
	"skb":          TypeSkb,
	"cred":         TypeCred,
	"kernel_cap_t": TypeKernelCapT,
	"syscall64":    TypeSyscall64,
	"nop":          TypeNop,
}

// unsupportedArgTypes are Tetragon's other types, each with the reason Vigil
// rejects it.
var unsupportedArgTypes = map[string]string{
	"auto":            "Vigil does not infer argument types from BTF; give the type",
	"const_buf":       "use char_buf with sizeArgIndex",
	"bpf_attr":        "read the bpf command as an int instead",
	"bpf_cmd":         "read the bpf command as an int instead",
	"perf_event":      "not supported by Vigil",
	"bpf_map":         "not supported by Vigil",
	"bpf_prog":        "not supported by Vigil",
	"user_namespace":  "not supported by Vigil",
	"kiocb":           "use file on a hook that takes a struct file *",
	"iov_iter":        "not supported by Vigil",
	"load_info":       "not supported by Vigil",
	"module":          "not supported by Vigil",
	"cap_inheritable": "use kernel_cap_t, or matchCapabilities type Inheritable",
	"cap_permitted":   "use kernel_cap_t, or matchCapabilities type Permitted",
	"cap_effective":   "use kernel_cap_t, or matchCapabilities type Effective",
	"data_loc":        "use string: Vigil reads __data_loc tracepoint fields as strings",
	"net_device":      "not supported by Vigil",
	"sockaddr_un":     "use sockaddr",
}

// ParseArgType returns the canonical type for a Tetragon type name.
func ParseArgType(s string) (ArgType, bool) {
	t, ok := argTypeAliases[s]
	return t, ok
}

// Class returns what can be matched on values of the type.
func (t ArgType) Class() ArgClass { return argTypes[t].class }

// IntSize returns the size in bytes and the signedness of an integer type;
// size is 0 for other types.
func (t ArgType) IntSize() (size int, signed bool) {
	i := argTypes[t]
	return i.size, i.signed
}

func argTypeNames() []string {
	names := make([]string, 0, len(argTypeAliases))
	for n := range argTypeAliases {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
