package encode

import (
	"math/bits"
	"strconv"
	"sync/atomic"
)

// capNames are the Linux capability names by bit number, as Tetragon spells
// them (its CapabilitiesType enum): every name but DAC_OVERRIDE has the
// CAP_ prefix.
var capNames = [...]string{
	"CAP_CHOWN", "DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
	"CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
	"CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
	"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// CapName returns the name of capability number c, for example
// "CAP_SYS_ADMIN" for 21 and "DAC_OVERRIDE" for 1 (Tetragon's name), or
// "CAP_<c>" for a number Tetragon has no name for.
func CapName(c int) string {
	if c >= 0 && c < len(capNames) {
		return capNames[c]
	}
	return "CAP_" + strconv.Itoa(c)
}

// CapEnumName returns the name of capability c in a capability set ("cap"
// of a process) and true, or false when Tetragon's enum has no name for it
// and the set holds its number instead.
func CapEnumName(c int) (string, bool) {
	if c >= 0 && c < len(capNames) {
		return capNames[c], true
	}
	return "", false
}

// capListEntry caches the JSON array of one capability mask. Processes on a
// node share a handful of masks (root, a runtime's default set, none), so a
// small cache turns ~40 appends into one copy.
type capListEntry struct {
	mask uint64
	json []byte
}

var capListCache [64]atomic.Pointer[capListEntry]

// appendCapList appends the JSON array of capability names set in mask. A
// capability Tetragon's enum has no name for is written as its number, as
// protobuf's JSON mapping writes an unknown enum value.
func appendCapList(dst []byte, mask uint64) []byte {
	slot := &capListCache[(mask*0x9E3779B97F4A7C15)>>58]
	if e := slot.Load(); e != nil && e.mask == mask {
		return append(dst, e.json...)
	}
	start := len(dst)
	dst = append(dst, '[')
	for m := mask; m != 0; m &= m - 1 {
		if dst[len(dst)-1] != '[' {
			dst = append(dst, ',')
		}
		c := bits.TrailingZeros64(m)
		if c >= len(capNames) {
			dst = strconv.AppendUint(dst, uint64(c), 10)
			continue
		}
		dst = append(dst, '"')
		dst = append(dst, capNames[c]...)
		dst = append(dst, '"')
	}
	dst = append(dst, ']')
	slot.Store(&capListEntry{mask: mask, json: append([]byte(nil), dst[start:]...)})
	return dst
}

var signalNames = [...]string{
	1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS",
	8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE",
	14: "SIGALRM", 15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD", 18: "SIGCONT", 19: "SIGSTOP",
	20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU", 23: "SIGURG", 24: "SIGXCPU", 25: "SIGXFSZ",
	26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO", 30: "SIGPWR", 31: "SIGSYS",
}

// appendSignal appends the name of signal sig ("SIGKILL", "SIGRTMIN+3").
func appendSignal(dst []byte, sig uint32) []byte {
	if int(sig) < len(signalNames) && signalNames[sig] != "" {
		return append(dst, signalNames[sig]...)
	}
	if sig >= 34 && sig <= 64 {
		dst = append(dst, "SIGRTMIN+"...)
		return strconv.AppendUint(dst, uint64(sig-34), 10)
	}
	dst = append(dst, "SIG"...)
	return strconv.AppendUint(dst, uint64(sig), 10)
}

// SignalName returns the name of signal sig, for example "SIGKILL".
func SignalName(sig uint32) string { return string(appendSignal(nil, sig)) }

func lookup(names []string, v uint64, prefix string, dst []byte) []byte {
	if v < uint64(len(names)) && names[v] != "" {
		return append(dst, names[v]...)
	}
	dst = append(dst, prefix...)
	return strconv.AppendUint(dst, v, 10)
}

var familyNames = []string{
	0: "AF_UNSPEC", 1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK", 17: "AF_PACKET",
	40: "AF_VSOCK", 44: "AF_XDP",
}

var sockTypeNames = []string{
	1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW", 4: "SOCK_RDM", 5: "SOCK_SEQPACKET",
	6: "SOCK_DCCP", 10: "SOCK_PACKET",
}

var protoNames = func() []string {
	n := make([]string, 263)
	n[0], n[1], n[6], n[17], n[41], n[58], n[132], n[136], n[255], n[262] =
		"IPPROTO_IP", "IPPROTO_ICMP", "IPPROTO_TCP", "IPPROTO_UDP", "IPPROTO_IPV6",
		"IPPROTO_ICMPV6", "IPPROTO_SCTP", "IPPROTO_UDPLITE", "IPPROTO_RAW", "IPPROTO_MPTCP"
	return n
}()

var tcpStateNames = []string{
	1: "TCP_ESTABLISHED", 2: "TCP_SYN_SENT", 3: "TCP_SYN_RECV", 4: "TCP_FIN_WAIT1",
	5: "TCP_FIN_WAIT2", 6: "TCP_TIME_WAIT", 7: "TCP_CLOSE", 8: "TCP_CLOSE_WAIT", 9: "TCP_LAST_ACK",
	10: "TCP_LISTEN", 11: "TCP_CLOSING", 12: "TCP_NEW_SYN_RECV",
}

// openFlagNames are the open(2) flags after the access mode, in bit order.
var openFlagNames = []struct {
	bit  uint32
	name string
}{
	{0o100, "O_CREAT"}, {0o200, "O_EXCL"}, {0o400, "O_NOCTTY"}, {0o1000, "O_TRUNC"},
	{0o2000, "O_APPEND"}, {0o4000, "O_NONBLOCK"}, {0o10000, "O_DSYNC"}, {0o20000, "O_ASYNC"},
	{0o40000, "O_DIRECT"}, {0o100000, "O_LARGEFILE"}, {0o200000, "O_DIRECTORY"},
	{0o400000, "O_NOFOLLOW"}, {0o1000000, "O_NOATIME"}, {0o2000000, "O_CLOEXEC"},
	{0o4000000, "O_SYNC"}, {0o10000000, "O_PATH"}, {0o20000000, "O_TMPFILE"},
}

// appendOpenFlags appends open(2) flags as names joined by '|', for example
// "O_WRONLY|O_CREAT|O_TRUNC".
func appendOpenFlags(dst []byte, f uint32) []byte {
	switch f & 3 {
	case 0:
		dst = append(dst, "O_RDONLY"...)
	case 1:
		dst = append(dst, "O_WRONLY"...)
	case 2:
		dst = append(dst, "O_RDWR"...)
	default:
		dst = append(dst, "O_ACCMODE"...)
	}
	rest := f &^ 3
	for _, n := range openFlagNames {
		if rest&n.bit != 0 {
			dst = append(dst, '|')
			dst = append(dst, n.name...)
			rest &^= n.bit
		}
	}
	if rest != 0 {
		dst = append(dst, "|0x"...)
		dst = strconv.AppendUint(dst, uint64(rest), 16)
	}
	return dst
}

// appendPermission appends a file mode the way ls shows it, "-rw-r--r--".
func appendPermission(dst []byte, mode uint32) []byte {
	var t byte
	switch mode & 0o170000 {
	case 0o040000:
		t = 'd'
	case 0o120000:
		t = 'l'
	case 0o020000:
		t = 'c'
	case 0o060000:
		t = 'b'
	case 0o010000:
		t = 'p'
	case 0o140000:
		t = 's'
	default:
		t = '-'
	}
	const rwx = "rwxrwxrwx"
	dst = append(dst, t)
	for i := 0; i < 9; i++ {
		if mode&(1<<(8-i)) != 0 {
			c := rwx[i]
			switch {
			case i == 2 && mode&0o4000 != 0:
				c = 's'
			case i == 5 && mode&0o2000 != 0:
				c = 's'
			case i == 8 && mode&0o1000 != 0:
				c = 't'
			}
			dst = append(dst, c)
		} else {
			c := byte('-')
			switch {
			case i == 2 && mode&0o4000 != 0:
				c = 'S'
			case i == 5 && mode&0o2000 != 0:
				c = 'S'
			case i == 8 && mode&0o1000 != 0:
				c = 'T'
			}
			dst = append(dst, c)
		}
	}
	return dst
}
