package encode

import "github.com/vigilsec/vigil/event"

// The text AppendJSON writes for named values, for readers that need a
// field of an event as exported without encoding the event (the rules
// engine's typed input). Each returns exactly what AppendJSON writes.

// OpenFlagsText is a file argument's "open_flags": "O_WRONLY|O_CREAT".
func OpenFlagsText(f uint32) string { return string(appendOpenFlags(nil, f)) }

// PermissionText is a path argument's "permission": "-rw-r--r--".
func PermissionText(mode uint32) string { return string(appendPermission(nil, mode)) }

// FamilyText is a socket's "family": "AF_INET".
func FamilyText(f uint16) string { return string(lookup(familyNames, uint64(f), "AF_", nil)) }

// SockTypeText is a socket's "type": "SOCK_STREAM".
func SockTypeText(t uint16) string { return string(lookup(sockTypeNames, uint64(t), "SOCK_", nil)) }

// ProtocolText is a socket's "protocol": "IPPROTO_TCP".
func ProtocolText(p uint16) string { return string(lookup(protoNames, uint64(p), "IPPROTO_", nil)) }

// TCPStateText is a socket's "state": "TCP_ESTABLISHED".
func TCPStateText(s uint8) string { return string(lookup(tcpStateNames, uint64(s), "TCP_", nil)) }

// FlowSummaryText is a flow's "Summary": "TCP Flags: SYN, ACK".
func FlowSummaryText(f *event.Flow) string { return string(AppendSummary(nil, f)) }

// L4Name is the key of a flow's "l4" object ("TCP", "UDP", "SCTP"), ""
// when a flow has none.
func L4Name(proto uint8) string { return l4Name(proto) }

// FlowPhaseText is a flow's "phase" ("FLOW_START"), "" when it has none.
func FlowPhaseText(p event.FlowPhase) string {
	if int(p) < len(flowPhaseNames) {
		return flowPhaseNames[p]
	}
	return ""
}

// TCPFlagNames appends the names of the flags set in f, the members of a
// TCP flow's "flags" object, in the order AppendJSON writes them.
func TCPFlagNames(dst []string, f event.TCPFlags) []string {
	for _, n := range tcpFlagNames {
		if f&n.flag != 0 {
			dst = append(dst, n.name)
		}
	}
	return dst
}
