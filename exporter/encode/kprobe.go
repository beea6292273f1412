package encode

import (
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/vigilsec/vigil/event"
)

// appendKprobe appends the body of process_kprobe, process_tracepoint,
// process_lsm and process_uprobe events, in Tetragon's shape plus Vigil's enforcement fields.
func appendKprobe(dst []byte, ev *event.Event, e *Encoder) []byte {
	dst = append(dst, '{')
	dst = appendProcessPair(dst, ev.Process, ev.Parent, e)
	k := ev.Kprobe
	if k == nil {
		return append(dst, '}')
	}
	tetragon := e.opts.Format == FormatTetragon
	if ev.Type == event.TypeProcessTracepoint {
		subsys, name, ok := strings.Cut(k.FunctionName, "/")
		if !ok {
			subsys, name = "", k.FunctionName
		}
		dst = appendStringField(dst, "subsys", subsys)
		dst = appendStringField(dst, "event", name)
	} else if ev.Type == event.TypeProcessUsdt {
		dst = appendStringField(dst, "path", k.UprobePath)
		dst = appendStringField(dst, "provider", k.UsdtProvider)
		dst = appendStringField(dst, "name", k.FunctionName)
	} else if ev.Type == event.TypeProcessUprobe {
		dst = appendStringField(dst, "path", k.UprobePath)
		if k.FunctionName != "" {
			dst = appendStringField(dst, "symbol", k.FunctionName)
		}
		if k.UprobeOffset != 0 {
			// A uint64, which protobuf's JSON writes as a string.
			dst = appendKey(dst, "offset")
			dst = append(dst, '"')
			dst = strconv.AppendUint(dst, k.UprobeOffset, 10)
			dst = append(dst, '"')
		}
	} else {
		dst = appendStringField(dst, "function_name", k.FunctionName)
	}
	if len(k.Args) > 0 {
		dst = appendKey(dst, "args")
		dst = append(dst, '[')
		for i := range k.Args {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendArg(dst, &k.Args[i], tetragon)
		}
		dst = append(dst, ']')
	}
	// Tetragon's tracepoint and LSM events have no return value.
	if k.Return != nil && (!tetragon || ev.Type == event.TypeProcessKprobe) {
		dst = appendKey(dst, "return")
		dst = appendArg(dst, k.Return, tetragon)
	}
	if k.Action != "" {
		action := k.Action
		if tetragon && k.Monitor {
			// Tetragon's action is what was done; in monitor mode
			// that is reporting the call.
			action = "KPROBE_ACTION_POST"
		}
		if !tetragon || isKprobeAction(action) {
			dst = appendStringField(dst, "action", action)
		}
	}
	if k.PolicyName != "" {
		dst = appendStringField(dst, "policy_name", k.PolicyName)
	}
	if k.Message != "" {
		dst = appendStringField(dst, "message", k.Message)
	}
	if len(k.Tags) > 0 {
		dst = appendStringList(dst, "tags", k.Tags)
	}
	if tetragon {
		return append(dst, '}')
	}
	if k.Mechanism != "" {
		dst = appendStringField(dst, "mechanism", k.Mechanism)
	}
	if k.Monitor {
		dst = appendBoolField(dst, "monitor", true)
	}
	if k.ActionNote != "" {
		dst = appendStringField(dst, "action_note", k.ActionNote)
	}
	if k.Errno != 0 {
		dst = appendKey(dst, "errno")
		dst = strconv.AppendInt(dst, int64(k.Errno), 10)
	}
	if k.Signal != 0 {
		dst = appendKey(dst, "signal")
		dst = append(dst, '"')
		dst = appendSignal(dst, k.Signal)
		dst = append(dst, '"')
	}
	if r := k.Repeats; r != nil {
		dst = appendKey(dst, "repeats")
		dst = append(dst, `{"count":`...)
		dst = strconv.AppendUint(dst, r.Count, 10)
		dst = append(dst, `,"first_time":`...)
		dst = appendTime(dst, r.First)
		dst = append(dst, `,"last_time":`...)
		dst = appendTime(dst, r.Last)
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// appendArg appends one typed argument: {"<kind>_arg":value,"label":...}.
// tetragon leaves out Vigil's "truncated".
func appendArg(dst []byte, a *event.Arg, tetragon bool) []byte {
	kind := a.Kind
	if tetragon {
		kind = tetragonKind(a)
		if kind.Key() == "unknown_arg" {
			// No value Tetragon's schema can hold: the label only.
			dst = append(dst, '{')
			if a.Label != "" {
				dst = appendStringField(dst, "label", a.Label)
			}
			return append(dst, '}')
		}
	}
	dst = append(dst, '{', '"')
	dst = append(dst, kind.Key()...)
	dst = append(dst, '"', ':')
	switch kind {
	case event.ArgInt:
		dst = strconv.AppendInt(dst, a.Int, 10)
	case event.ArgLong:
		// A 64-bit value, quoted as protobuf's JSON mapping writes it.
		dst = append(dst, '"')
		dst = strconv.AppendInt(dst, a.Int, 10)
		dst = append(dst, '"')
	case event.ArgUint:
		dst = strconv.AppendUint(dst, a.Uint, 10)
	case event.ArgSize:
		dst = append(dst, '"')
		dst = strconv.AppendUint(dst, a.Uint, 10)
		dst = append(dst, '"')
	case event.ArgString:
		dst = AppendBytes(dst, a.Str)
	case event.ArgBytes:
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, a.Bytes)
		dst = append(dst, '"')
	case event.ArgFile:
		// Tetragon's file_arg "flags" are its path-resolution flags, not
		// the open flags: those are Vigil's own "open_flags".
		dst = append(dst, `{"path":`...)
		dst = AppendBytes(dst, a.Str)
		if !tetragon {
			dst = append(dst, `,"open_flags":"`...)
			dst = appendOpenFlags(dst, a.Flags)
			dst = append(dst, '"')
		}
		dst = append(dst, '}')
	case event.ArgPath, event.ArgBinprm:
		dst = append(dst, `{"path":`...)
		dst = AppendBytes(dst, a.Str)
		if a.Flags != 0 {
			dst = append(dst, `,"permission":"`...)
			dst = appendPermission(dst, a.Flags)
			dst = append(dst, '"')
		}
		dst = append(dst, '}')
	case event.ArgSock, event.ArgSkb:
		dst = appendSock(dst, a.Sock, a.Kind == event.ArgSock)
	case event.ArgSockaddr:
		dst = appendSockaddr(dst, a.Sock)
	case event.ArgCred:
		var c event.Credentials
		if a.Cred != nil {
			c = *a.Cred
		}
		dst = appendCreds(dst, &c)
	case event.ArgCapability:
		dst = append(dst, '{')
		if !tetragon || a.Int == int64(int32(a.Int)) {
			dst = append(dst, `"value":`...)
			dst = strconv.AppendInt(dst, a.Int, 10)
			dst = append(dst, ',')
		}
		dst = append(dst, `"name":"`...)
		dst = append(dst, CapName(int(a.Int))...)
		dst = append(dst, '"', '}')
	case event.ArgKernelCapT:
		// Tetragon writes capability sets as 16 hex digits.
		var b [16]byte
		v := a.Uint
		for i := 15; i >= 0; i-- {
			b[i] = hexDigits[v&0xf]
			v >>= 4
		}
		dst = append(dst, '"')
		dst = append(dst, b[:]...)
		dst = append(dst, '"')
	default:
		dst = append(dst, '{', '}')
	}
	if a.Truncated && !tetragon {
		dst = appendBoolField(dst, "truncated", true)
	}
	if a.Label != "" {
		dst = appendStringField(dst, "label", a.Label)
	}
	return append(dst, '}')
}

func appendSock(dst []byte, s *event.Sock, withState bool) []byte {
	dst = append(dst, '{')
	if s == nil {
		return append(dst, '}')
	}
	dst = append(dst, `"family":"`...)
	dst = lookup(familyNames, uint64(s.Family), "AF_", dst)
	if withState {
		dst = append(dst, `","type":"`...)
		dst = lookup(sockTypeNames, uint64(s.Type), "SOCK_", dst)
	}
	dst = append(dst, `","protocol":"`...)
	dst = lookup(protoNames, uint64(s.Protocol), "IPPROTO_", dst)
	dst = append(dst, '"')
	if s.Saddr.IsValid() {
		dst = append(dst, `,"saddr":"`...)
		dst = s.Saddr.AppendTo(dst)
		dst = append(dst, '"')
	}
	if s.Daddr.IsValid() {
		dst = append(dst, `,"daddr":"`...)
		dst = s.Daddr.AppendTo(dst)
		dst = append(dst, '"')
	}
	dst = appendUintField(dst, "sport", uint64(s.Sport))
	dst = appendUintField(dst, "dport", uint64(s.Dport))
	if withState {
		if s.Cookie != 0 {
			dst = appendUint64Field(dst, "cookie", s.Cookie)
		}
		if s.State != 0 {
			dst = append(dst, `,"state":"`...)
			dst = lookup(tcpStateNames, uint64(s.State), "TCP_", dst)
			dst = append(dst, '"')
		}
	}
	return append(dst, '}')
}

// appendSockaddr appends a socket address: the destination address when the
// producer filled one (connect, sendmsg), else the source (bind).
func appendSockaddr(dst []byte, s *event.Sock) []byte {
	dst = append(dst, '{')
	if s == nil {
		return append(dst, '}')
	}
	addr, port := s.Daddr, s.Dport
	if !addr.IsValid() {
		addr, port = s.Saddr, s.Sport
	}
	dst = append(dst, `"family":"`...)
	dst = lookup(familyNames, uint64(s.Family), "AF_", dst)
	dst = append(dst, '"')
	if addr.IsValid() {
		dst = append(dst, `,"addr":"`...)
		dst = addr.AppendTo(dst)
		dst = append(dst, '"')
	}
	dst = appendUintField(dst, "port", uint64(port))
	return append(dst, '}')
}

// tetragonKind is the kind an argument is written as in the tetragon
// format: a value too wide for Tetragon's 32-bit int_arg or uint_arg (which
// Vigil's producers do not make) moves to the 64-bit kind of the same sign,
// so that it is neither refused nor cut.
func tetragonKind(a *event.Arg) event.ArgKind {
	switch {
	case a.Kind == event.ArgInt && a.Int != int64(int32(a.Int)):
		return event.ArgLong
	case a.Kind == event.ArgUint && a.Uint > 1<<32-1:
		return event.ArgSize
	}
	return a.Kind
}

// kprobeActions are the names of Tetragon's KprobeAction enum
// (TestKprobeActionsAreTetragons keeps them equal to the schema's).
var kprobeActions = [...]string{
	"KPROBE_ACTION_UNKNOWN", "KPROBE_ACTION_POST", "KPROBE_ACTION_FOLLOWFD", "KPROBE_ACTION_SIGKILL",
	"KPROBE_ACTION_UNFOLLOWFD", "KPROBE_ACTION_OVERRIDE", "KPROBE_ACTION_COPYFD", "KPROBE_ACTION_GETURL",
	"KPROBE_ACTION_DNSLOOKUP", "KPROBE_ACTION_NOPOST", "KPROBE_ACTION_SIGNAL", "KPROBE_ACTION_TRACKSOCK",
	"KPROBE_ACTION_UNTRACKSOCK", "KPROBE_ACTION_NOTIFYENFORCER", "KPROBE_ACTION_CLEANUPENFORCERNOTIFICATION",
	"KPROBE_ACTION_SET",
}

// isKprobeAction reports whether s names a value of Tetragon's KprobeAction.
func isKprobeAction(s string) bool {
	for _, a := range kprobeActions {
		if a == s {
			return true
		}
	}
	return false
}
