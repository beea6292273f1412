package tracingpolicies

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// parseInteger parses an integer value for a type of the given size and
// signedness: decimal, 0x hexadecimal, 0o or leading-0 octal, 0b binary.
// Signed values are returned sign-extended to 64 bits.
func parseInteger(s string, size int, signed bool) (uint64, error) {
	bits := size * 8
	if signed {
		v, err := strconv.ParseInt(s, 0, 64)
		if err != nil {
			return 0, numError(s, err)
		}
		if bits < 64 && (v < -(1<<(bits-1)) || v > 1<<(bits-1)-1) {
			return 0, fmt.Errorf("%s is out of range for a %d-bit signed integer", s, bits)
		}
		return uint64(v), nil
	}
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("%s is negative, and the argument is unsigned", s)
	}
	v, err := strconv.ParseUint(s, 0, 64)
	if err != nil {
		return 0, numError(s, err)
	}
	if bits < 64 && v > 1<<bits-1 {
		return 0, fmt.Errorf("%s is out of range for a %d-bit unsigned integer", s, bits)
	}
	return v, nil
}

func numError(s string, err error) error {
	if errors.Is(err, strconv.ErrRange) {
		return fmt.Errorf("%s is out of range for a 64-bit integer", s)
	}
	return fmt.Errorf("%q is not an integer (decimal, 0x hexadecimal or 0 octal)", s)
}

// parsePortRange parses "80" or "1024:65535".
func parsePortRange(s string) (PortRange, error) {
	lo, hi, isRange := strings.Cut(s, ":")
	min, err := parsePort(lo)
	if err != nil {
		return PortRange{}, err
	}
	if !isRange {
		return PortRange{min, min}, nil
	}
	max, err := parsePort(hi)
	if err != nil {
		return PortRange{}, err
	}
	if min > max {
		return PortRange{}, fmt.Errorf("port range %s is empty: %d is greater than %d", s, min, max)
	}
	return PortRange{min, max}, nil
}

func parsePort(s string) (uint16, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > math.MaxUint16 {
		return 0, fmt.Errorf("%q is not a port: want a number from 0 to 65535 or a range MIN:MAX", s)
	}
	return uint16(v), nil
}

// parseAddrPrefix parses an IPv4 or IPv6 address or CIDR. A single address
// becomes a /32 or /128. A CIDR with host bits set (127.0.0.1/8) is masked,
// as Tetragon does, and masked is true.
func parseAddrPrefix(s string) (_ netip.Prefix, masked bool, _ error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, false, fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8 or fd00::/8", s)
		}
		if p.Addr().Zone() != "" {
			return netip.Prefix{}, false, fmt.Errorf("%q: zones are not supported", s)
		}
		m := p.Masked()
		return m, m != p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, false, fmt.Errorf("%q is not an IP address or CIDR", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), false, nil
}

var protocols = map[string]uint64{
	"IPPROTO_IP": unix.IPPROTO_IP, "IPPROTO_ICMP": unix.IPPROTO_ICMP, "IPPROTO_IGMP": unix.IPPROTO_IGMP,
	"IPPROTO_IPIP": unix.IPPROTO_IPIP, "IPPROTO_TCP": unix.IPPROTO_TCP, "IPPROTO_EGP": unix.IPPROTO_EGP,
	"IPPROTO_PUP": unix.IPPROTO_PUP, "IPPROTO_UDP": unix.IPPROTO_UDP, "IPPROTO_IDP": unix.IPPROTO_IDP,
	"IPPROTO_TP": unix.IPPROTO_TP, "IPPROTO_DCCP": unix.IPPROTO_DCCP, "IPPROTO_IPV6": unix.IPPROTO_IPV6,
	"IPPROTO_RSVP": unix.IPPROTO_RSVP, "IPPROTO_GRE": unix.IPPROTO_GRE, "IPPROTO_ESP": unix.IPPROTO_ESP,
	"IPPROTO_AH": unix.IPPROTO_AH, "IPPROTO_ICMPV6": unix.IPPROTO_ICMPV6, "IPPROTO_MTP": unix.IPPROTO_MTP,
	"IPPROTO_BEETPH": unix.IPPROTO_BEETPH, "IPPROTO_ENCAP": unix.IPPROTO_ENCAP, "IPPROTO_PIM": unix.IPPROTO_PIM,
	"IPPROTO_COMP": unix.IPPROTO_COMP, "IPPROTO_L2TP": unix.IPPROTO_L2TP, "IPPROTO_SCTP": unix.IPPROTO_SCTP,
	"IPPROTO_UDPLITE": unix.IPPROTO_UDPLITE, "IPPROTO_MPLS": unix.IPPROTO_MPLS, "IPPROTO_RAW": unix.IPPROTO_RAW,
	"IPPROTO_MPTCP": unix.IPPROTO_MPTCP,
}

// parseProtocol parses an IPPROTO_ name or a protocol number.
func parseProtocol(s string) (uint64, error) {
	if v, ok := protocols[s]; ok {
		return v, nil
	}
	if v, err := strconv.ParseUint(s, 0, 64); err == nil {
		if v > math.MaxUint16 {
			return 0, fmt.Errorf("protocol %s is out of range (0 to 65535)", s)
		}
		return v, nil
	}
	return 0, fmt.Errorf("%q is not a protocol: want a number or a name such as IPPROTO_TCP%s", s, didYouMean(s, mapKeys(protocols)))
}

var families = map[string]uint64{
	"AF_UNSPEC": unix.AF_UNSPEC, "AF_UNIX": unix.AF_UNIX, "AF_LOCAL": unix.AF_LOCAL, "AF_INET": unix.AF_INET,
	"AF_AX25": unix.AF_AX25, "AF_IPX": unix.AF_IPX, "AF_APPLETALK": unix.AF_APPLETALK, "AF_NETROM": unix.AF_NETROM,
	"AF_BRIDGE": unix.AF_BRIDGE, "AF_ATMPVC": unix.AF_ATMPVC, "AF_X25": unix.AF_X25, "AF_INET6": unix.AF_INET6,
	"AF_ROSE": unix.AF_ROSE, "AF_NETBEUI": unix.AF_NETBEUI, "AF_SECURITY": unix.AF_SECURITY, "AF_KEY": unix.AF_KEY,
	"AF_NETLINK": unix.AF_NETLINK, "AF_ROUTE": unix.AF_ROUTE, "AF_PACKET": unix.AF_PACKET, "AF_ASH": unix.AF_ASH,
	"AF_ECONET": unix.AF_ECONET, "AF_ATMSVC": unix.AF_ATMSVC, "AF_RDS": unix.AF_RDS, "AF_SNA": unix.AF_SNA,
	"AF_IRDA": unix.AF_IRDA, "AF_PPPOX": unix.AF_PPPOX, "AF_WANPIPE": unix.AF_WANPIPE, "AF_LLC": unix.AF_LLC,
	"AF_IB": unix.AF_IB, "AF_MPLS": unix.AF_MPLS, "AF_CAN": unix.AF_CAN, "AF_TIPC": unix.AF_TIPC,
	"AF_BLUETOOTH": unix.AF_BLUETOOTH, "AF_IUCV": unix.AF_IUCV, "AF_RXRPC": unix.AF_RXRPC, "AF_ISDN": unix.AF_ISDN,
	"AF_PHONET": unix.AF_PHONET, "AF_IEEE802154": unix.AF_IEEE802154, "AF_CAIF": unix.AF_CAIF, "AF_ALG": unix.AF_ALG,
	"AF_NFC": unix.AF_NFC, "AF_VSOCK": unix.AF_VSOCK, "AF_KCM": unix.AF_KCM, "AF_QIPCRTR": unix.AF_QIPCRTR,
	"AF_SMC": unix.AF_SMC, "AF_XDP": unix.AF_XDP, "AF_MCTP": unix.AF_MCTP,
}

// parseFamily parses an AF_ name or an address family number.
func parseFamily(s string) (uint64, error) {
	if v, ok := families[s]; ok {
		return v, nil
	}
	if v, err := strconv.ParseUint(s, 0, 64); err == nil {
		if v >= unix.AF_MAX {
			return 0, fmt.Errorf("address family %s is out of range (0 to %d)", s, unix.AF_MAX-1)
		}
		return v, nil
	}
	return 0, fmt.Errorf("%q is not an address family: want a number or a name such as AF_INET or AF_INET6%s", s, didYouMean(s, mapKeys(families)))
}

// tcpStates are the kernel's socket states (include/net/tcp_states.h),
// which the State operator compares.
var tcpStates = map[string]uint64{
	"TCP_ESTABLISHED": 1, "TCP_SYN_SENT": 2, "TCP_SYN_RECV": 3, "TCP_FIN_WAIT1": 4, "TCP_FIN_WAIT2": 5,
	"TCP_TIME_WAIT": 6, "TCP_CLOSE": 7, "TCP_CLOSE_WAIT": 8, "TCP_LAST_ACK": 9, "TCP_LISTEN": 10,
	"TCP_CLOSING": 11, "TCP_NEW_SYN_RECV": 12,
}

// parseState parses a socket state name (TCP_ESTABLISHED) or number.
func parseState(s string) (uint64, error) {
	if v, ok := tcpStates[s]; ok {
		return v, nil
	}
	if v, err := strconv.ParseUint(s, 0, 8); err == nil && v >= 1 && v <= 12 {
		return v, nil
	}
	return 0, fmt.Errorf("%q is not a socket state: want a name such as TCP_ESTABLISHED or TCP_SYN_RECV, or 1 to 12%s", s, didYouMean(s, mapKeys(tcpStates)))
}

var capabilities = map[string]uint64{
	"CAP_CHOWN": unix.CAP_CHOWN, "CAP_DAC_OVERRIDE": unix.CAP_DAC_OVERRIDE,
	"CAP_DAC_READ_SEARCH": unix.CAP_DAC_READ_SEARCH, "CAP_FOWNER": unix.CAP_FOWNER,
	"CAP_FSETID": unix.CAP_FSETID, "CAP_KILL": unix.CAP_KILL, "CAP_SETGID": unix.CAP_SETGID,
	"CAP_SETUID": unix.CAP_SETUID, "CAP_SETPCAP": unix.CAP_SETPCAP,
	"CAP_LINUX_IMMUTABLE": unix.CAP_LINUX_IMMUTABLE, "CAP_NET_BIND_SERVICE": unix.CAP_NET_BIND_SERVICE,
	"CAP_NET_BROADCAST": unix.CAP_NET_BROADCAST, "CAP_NET_ADMIN": unix.CAP_NET_ADMIN,
	"CAP_NET_RAW": unix.CAP_NET_RAW, "CAP_IPC_LOCK": unix.CAP_IPC_LOCK, "CAP_IPC_OWNER": unix.CAP_IPC_OWNER,
	"CAP_SYS_MODULE": unix.CAP_SYS_MODULE, "CAP_SYS_RAWIO": unix.CAP_SYS_RAWIO,
	"CAP_SYS_CHROOT": unix.CAP_SYS_CHROOT, "CAP_SYS_PTRACE": unix.CAP_SYS_PTRACE,
	"CAP_SYS_PACCT": unix.CAP_SYS_PACCT, "CAP_SYS_ADMIN": unix.CAP_SYS_ADMIN, "CAP_SYS_BOOT": unix.CAP_SYS_BOOT,
	"CAP_SYS_NICE": unix.CAP_SYS_NICE, "CAP_SYS_RESOURCE": unix.CAP_SYS_RESOURCE,
	"CAP_SYS_TIME": unix.CAP_SYS_TIME, "CAP_SYS_TTY_CONFIG": unix.CAP_SYS_TTY_CONFIG,
	"CAP_MKNOD": unix.CAP_MKNOD, "CAP_LEASE": unix.CAP_LEASE, "CAP_AUDIT_WRITE": unix.CAP_AUDIT_WRITE,
	"CAP_AUDIT_CONTROL": unix.CAP_AUDIT_CONTROL, "CAP_SETFCAP": unix.CAP_SETFCAP,
	"CAP_MAC_OVERRIDE": unix.CAP_MAC_OVERRIDE, "CAP_MAC_ADMIN": unix.CAP_MAC_ADMIN,
	"CAP_SYSLOG": unix.CAP_SYSLOG, "CAP_WAKE_ALARM": unix.CAP_WAKE_ALARM,
	"CAP_BLOCK_SUSPEND": unix.CAP_BLOCK_SUSPEND, "CAP_AUDIT_READ": unix.CAP_AUDIT_READ,
	"CAP_PERFMON": unix.CAP_PERFMON, "CAP_BPF": unix.CAP_BPF,
	"CAP_CHECKPOINT_RESTORE": unix.CAP_CHECKPOINT_RESTORE,
}

// parseCapability parses a capability name (CAP_SYS_ADMIN) and returns its
// number. Numbers are accepted when allowNumber is set.
func parseCapability(s string, allowNumber bool) (uint64, error) {
	if v, ok := capabilities[s]; ok {
		return v, nil
	}
	if s == "DAC_OVERRIDE" {
		// Tetragon's name of CAP_DAC_OVERRIDE (its capability enum, and so
		// its policies and events, spell this one without the prefix).
		return unix.CAP_DAC_OVERRIDE, nil
	}
	if allowNumber {
		if v, err := strconv.ParseUint(s, 0, 64); err == nil {
			if v > unix.CAP_LAST_CAP {
				return 0, fmt.Errorf("capability %s is out of range (0 to %d)", s, unix.CAP_LAST_CAP)
			}
			return v, nil
		}
	}
	if _, ok := capabilities["CAP_"+strings.ToUpper(s)]; ok && !strings.HasPrefix(s, "CAP_") {
		return 0, fmt.Errorf("%q is not a capability name; write CAP_%s", s, strings.ToUpper(s))
	}
	return 0, fmt.Errorf("%q is not a capability name such as CAP_SYS_ADMIN%s", s, didYouMean(strings.ToUpper(s), mapKeys(capabilities)))
}

// parseSignal parses a signal number (1 to 64) or name (SIGKILL, KILL).
func parseSignal(s string) (int, error) {
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		if v < 1 || v > MaxSignal {
			return 0, fmt.Errorf("signal %s is out of range (1 to %d)", s, MaxSignal)
		}
		return int(v), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if n := unix.SignalNum(name); n != 0 {
		return int(n), nil
	}
	return 0, fmt.Errorf("%q is not a signal: want a number from 1 to %d or a name such as SIGKILL", s, MaxSignal)
}

// parseRateLimit parses a Post rateLimit: a number of seconds, or a number
// followed by s, m or h.
func parseRateLimit(s string) (time.Duration, error) {
	unit := time.Second
	num := s
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 's', 'S':
			num = s[:n-1]
		case 'm', 'M':
			unit, num = time.Minute, s[:n-1]
		case 'h', 'H':
			unit, num = time.Hour, s[:n-1]
		}
	}
	v, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a rate limit: want a number of seconds, or a number followed by s, m or h (30s, 5m, 1h)", s)
	}
	if v == 0 {
		return 0, fmt.Errorf("rate limit %q is zero; omit rateLimit for no limit", s)
	}
	if v > uint64(MaxRateLimit/unit) {
		return 0, fmt.Errorf("rate limit %q is longer than the maximum of %s", s, MaxRateLimit.Truncate(time.Hour))
	}
	return time.Duration(v) * unit, nil
}

func mapKeys(m map[string]uint64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
