package rules

import (
	"encoding/base64"
	"net/netip"
	"strconv"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/exporter/encode"
)

// process_kprobe, process_tracepoint and process_lsm bodies
// (encode/kprobe.go).
type kprobeNode view

// kprobeField is a member of the policy part of the body, absent when
// the event has none.
func kprobeField(name string, get func(*event.Event, *event.Kprobe) val) field[view] {
	return field[view]{name, func(v *view) val {
		if v.ev.Kprobe == nil {
			return undef
		}
		return get(v.ev, v.ev.Kprobe)
	}}
}

// tracepointName is the subsystem and event of a tracepoint's
// "subsystem/event".
func tracepointName(fn string) (string, string) {
	subsys, name, ok := strings.Cut(fn, "/")
	if !ok {
		return "", fn
	}
	return subsys, name
}

var kprobeSchema = newSchema(processField, parentField,
	kprobeField("subsys", func(ev *event.Event, k *event.Kprobe) val {
		if ev.Type != event.TypeProcessTracepoint {
			return undef
		}
		s, _ := tracepointName(k.FunctionName)
		return textVal(s)
	}),
	kprobeField("event", func(ev *event.Event, k *event.Kprobe) val {
		if ev.Type != event.TypeProcessTracepoint {
			return undef
		}
		_, n := tracepointName(k.FunctionName)
		return textVal(n)
	}),
	kprobeField("function_name", func(ev *event.Event, k *event.Kprobe) val {
		if ev.Type == event.TypeProcessTracepoint {
			return undef
		}
		return textVal(k.FunctionName)
	}),
	kprobeField("args", func(_ *event.Event, k *event.Kprobe) val {
		if len(k.Args) == 0 {
			return undef
		}
		return nodeVal(arrKind, (*argsNode)(&k.Args))
	}),
	kprobeField("return", func(_ *event.Event, k *event.Kprobe) val {
		if k.Return == nil {
			return undef
		}
		return nodeVal(objKind, (*argNode)(k.Return))
	}),
	kprobeField("action", func(_ *event.Event, k *event.Kprobe) val { return textIf(k.Action) }),
	kprobeField("policy_name", func(_ *event.Event, k *event.Kprobe) val { return textIf(k.PolicyName) }),
	kprobeField("message", func(_ *event.Event, k *event.Kprobe) val { return textIf(k.Message) }),
	kprobeField("tags", func(_ *event.Event, k *event.Kprobe) val { return listVal(&k.Tags) }),
	kprobeField("mechanism", func(_ *event.Event, k *event.Kprobe) val { return textIf(k.Mechanism) }),
	kprobeField("monitor", func(_ *event.Event, k *event.Kprobe) val { return trueIf(k.Monitor) }),
	kprobeField("action_note", func(_ *event.Event, k *event.Kprobe) val { return textIf(k.ActionNote) }),
	kprobeField("errno", func(_ *event.Event, k *event.Kprobe) val {
		if k.Errno == 0 {
			return undef
		}
		return intVal(int64(k.Errno))
	}),
	kprobeField("signal", func(_ *event.Event, k *event.Kprobe) val { return signalIf(k.Signal) }),
	kprobeField("repeats", func(_ *event.Event, k *event.Kprobe) val {
		if k.Repeats == nil {
			return undef
		}
		return nodeVal(objKind, (*repeatsNode)(k.Repeats))
	}),
)

// "repeats": identical calls folded in the kernel, {"count",
// "first_time", "last_time"}.
type repeatsNode event.Repeats

var repeatsSchema = newSchema(
	field[event.Repeats]{"count", func(r *event.Repeats) val { return uintVal(r.Count) }},
	field[event.Repeats]{"first_time", func(r *event.Repeats) val { return strVal(timeText(r.First)) }},
	field[event.Repeats]{"last_time", func(r *event.Repeats) val { return strVal(timeText(r.Last)) }},
)

func (n *repeatsNode) get(k key) val       { return repeatsSchema.get((*event.Repeats)(n), k) }
func (n *repeatsNode) size() int           { return len(repeatsSchema.fields) }
func (n *repeatsNode) at(i int) (val, val) { return repeatsSchema.at((*event.Repeats)(n), i) }
func (n *repeatsNode) term(m *materializer) ast.Value {
	return repeatsSchema.term(m, (*event.Repeats)(n))
}

func (n *kprobeNode) get(k key) val       { return kprobeSchema.get((*view)(n), k) }
func (n *kprobeNode) size() int           { return len(kprobeSchema.fields) }
func (n *kprobeNode) at(i int) (val, val) { return kprobeSchema.at((*view)(n), i) }
func (n *kprobeNode) term(m *materializer) ast.Value {
	return kprobeSchema.term(m, (*view)(n))
}

// "args": the typed arguments.
type argsNode []event.Arg

func (n *argsNode) get(k key) val {
	if k.isNum && k.num < len(*n) {
		return nodeVal(objKind, (*argNode)(&(*n)[k.num]))
	}
	return undef
}
func (n *argsNode) size() int { return len(*n) }
func (n *argsNode) at(i int) (val, val) {
	return intVal(int64(i)), nodeVal(objKind, (*argNode)(&(*n)[i]))
}
func (n *argsNode) term(m *materializer) ast.Value {
	terms := make([]*ast.Term, len(*n))
	for i := range *n {
		terms[i] = ast.NewTerm((*argNode)(&(*n)[i]).term(m))
	}
	return ast.NewArray(terms...)
}

// An argument: {"<kind>_arg": value, "truncated": true, "label": ...}.
type argNode event.Arg

var (
	argKindIDs = func() (ids [event.ArgLong + 1]uint16) {
		for k := range ids {
			ids[k] = fieldID(event.ArgKind(k).Key())
		}
		return ids
	}()
	truncatedID = fieldID("truncated")
	labelID     = fieldID("label")
	argLabelKey = ast.StringTerm("label")
	truncKey    = ast.StringTerm("truncated")
)

func kindID(k event.ArgKind) uint16 {
	if int(k) < len(argKindIDs) {
		return argKindIDs[k]
	}
	return argKindIDs[0]
}

func (n *argNode) get(k key) val {
	a := (*event.Arg)(n)
	switch {
	case k.id == 0:
		return undef
	case k.id == kindID(a.Kind):
		return argValue(a)
	case k.id == truncatedID:
		return trueIf(a.Truncated)
	case k.id == labelID:
		return textIf(a.Label)
	}
	return undef
}

func (n *argNode) size() int { return 3 }

func (n *argNode) at(i int) (val, val) {
	a := (*event.Arg)(n)
	switch i {
	case 0:
		return strVal(a.Kind.Key()), argValue(a)
	case 1:
		return strVal("truncated"), trueIf(a.Truncated)
	}
	return strVal("label"), textIf(a.Label)
}

func (n *argNode) term(m *materializer) ast.Value {
	a := (*event.Arg)(n)
	pairs := make([][2]*ast.Term, 1, 3)
	pairs[0] = [2]*ast.Term{ast.StringTerm(a.Kind.Key()), ast.NewTerm(toAST(argValue(a), m))}
	if a.Truncated {
		pairs = append(pairs, [2]*ast.Term{truncKey, ast.BooleanTerm(true)})
	}
	if a.Label != "" {
		pairs = append(pairs, [2]*ast.Term{argLabelKey, ast.StringTerm(jsonText(a.Label))})
	}
	return ast.NewObject(pairs...)
}

var (
	zeroCreds  event.Credentials
	emptyValue = nodeVal(objKind, &emptyObject{})
)

// argValue is the value of an argument's kind member.
func argValue(a *event.Arg) val {
	switch a.Kind {
	case event.ArgInt:
		return intVal(a.Int)
	case event.ArgLong:
		return strVal(strconv.FormatInt(a.Int, 10))
	case event.ArgUint:
		return uintVal(a.Uint)
	case event.ArgSize:
		return strVal(strconv.FormatUint(a.Uint, 10))
	case event.ArgString:
		return bytesVal(a.Str)
	case event.ArgBytes:
		return strVal(base64.StdEncoding.EncodeToString(a.Bytes))
	case event.ArgFile:
		return nodeVal(objKind, (*fileArgNode)(a))
	case event.ArgPath, event.ArgBinprm:
		return nodeVal(objKind, (*pathArgNode)(a))
	case event.ArgSock:
		if a.Sock == nil {
			return emptyValue
		}
		return nodeVal(objKind, (*sockNode)(a.Sock))
	case event.ArgSkb:
		if a.Sock == nil {
			return emptyValue
		}
		return nodeVal(objKind, (*skbNode)(a.Sock))
	case event.ArgSockaddr:
		if a.Sock == nil {
			return emptyValue
		}
		return nodeVal(objKind, (*sockaddrNode)(a.Sock))
	case event.ArgCred:
		if a.Cred == nil {
			return nodeVal(objKind, (*credsNode)(&zeroCreds))
		}
		return nodeVal(objKind, (*credsNode)(a.Cred))
	case event.ArgCapability:
		return nodeVal(objKind, (*capArgNode)(a))
	case event.ArgKernelCapT:
		const hex = "0123456789abcdef"
		var b [16]byte
		v := a.Uint
		for i := 15; i >= 0; i-- {
			b[i] = hex[v&0xf]
			v >>= 4
		}
		return strVal(string(b[:]))
	}
	return emptyValue
}

// emptyObject is {}.
type emptyObject struct{}

func (*emptyObject) get(key) val                  { return undef }
func (*emptyObject) size() int                    { return 0 }
func (*emptyObject) at(int) (val, val)            { return undef, undef }
func (*emptyObject) term(*materializer) ast.Value { return ast.NewObject() }

type (
	fileArgNode event.Arg
	pathArgNode event.Arg
	capArgNode  event.Arg
)

var (
	fileArgSchema = newSchema(
		field[event.Arg]{"path", func(a *event.Arg) val { return bytesVal(a.Str) }},
		field[event.Arg]{"open_flags", func(a *event.Arg) val { return strVal(encode.OpenFlagsText(a.Flags)) }},
	)
	pathArgSchema = newSchema(
		field[event.Arg]{"path", func(a *event.Arg) val { return bytesVal(a.Str) }},
		field[event.Arg]{"permission", func(a *event.Arg) val {
			if a.Flags == 0 {
				return undef
			}
			return strVal(encode.PermissionText(a.Flags))
		}},
	)
	capArgSchema = newSchema(
		field[event.Arg]{"value", func(a *event.Arg) val { return intVal(a.Int) }},
		field[event.Arg]{"name", func(a *event.Arg) val { return strVal(encode.CapName(int(a.Int))) }},
	)
)

func (n *fileArgNode) get(k key) val       { return fileArgSchema.get((*event.Arg)(n), k) }
func (n *fileArgNode) size() int           { return 2 }
func (n *fileArgNode) at(i int) (val, val) { return fileArgSchema.at((*event.Arg)(n), i) }
func (n *fileArgNode) term(m *materializer) ast.Value {
	return fileArgSchema.term(m, (*event.Arg)(n))
}
func (n *pathArgNode) get(k key) val       { return pathArgSchema.get((*event.Arg)(n), k) }
func (n *pathArgNode) size() int           { return 2 }
func (n *pathArgNode) at(i int) (val, val) { return pathArgSchema.at((*event.Arg)(n), i) }
func (n *pathArgNode) term(m *materializer) ast.Value {
	return pathArgSchema.term(m, (*event.Arg)(n))
}
func (n *capArgNode) get(k key) val       { return capArgSchema.get((*event.Arg)(n), k) }
func (n *capArgNode) size() int           { return 2 }
func (n *capArgNode) at(i int) (val, val) { return capArgSchema.at((*event.Arg)(n), i) }
func (n *capArgNode) term(m *materializer) ast.Value {
	return capArgSchema.term(m, (*event.Arg)(n))
}

// Sockets: "sock_arg" (with type, cookie and state), "skb_arg", and
// socket addresses.
type (
	sockNode     event.Sock
	skbNode      event.Sock
	sockaddrNode event.Sock
)

func addrIf(a netip.Addr) val {
	if !a.IsValid() {
		return undef
	}
	return strVal(a.String())
}

var (
	sockFamily   = field[event.Sock]{"family", func(s *event.Sock) val { return strVal(encode.FamilyText(s.Family)) }}
	sockProtocol = field[event.Sock]{"protocol", func(s *event.Sock) val {
		return strVal(encode.ProtocolText(s.Protocol))
	}}
	sockSaddr = field[event.Sock]{"saddr", func(s *event.Sock) val { return addrIf(s.Saddr) }}
	sockDaddr = field[event.Sock]{"daddr", func(s *event.Sock) val { return addrIf(s.Daddr) }}
	sockSport = field[event.Sock]{"sport", func(s *event.Sock) val { return intVal(int64(s.Sport)) }}
	sockDport = field[event.Sock]{"dport", func(s *event.Sock) val { return intVal(int64(s.Dport)) }}

	sockSchema = newSchema(sockFamily,
		field[event.Sock]{"type", func(s *event.Sock) val { return strVal(encode.SockTypeText(s.Type)) }},
		sockProtocol, sockSaddr, sockDaddr, sockSport, sockDport,
		field[event.Sock]{"cookie", func(s *event.Sock) val {
			if s.Cookie == 0 {
				return undef
			}
			return strVal(strconv.FormatUint(s.Cookie, 10))
		}},
		field[event.Sock]{"state", func(s *event.Sock) val {
			if s.State == 0 {
				return undef
			}
			return strVal(encode.TCPStateText(s.State))
		}},
	)
	skbSchema      = newSchema(sockFamily, sockProtocol, sockSaddr, sockDaddr, sockSport, sockDport)
	sockaddrSchema = newSchema(sockFamily,
		field[event.Sock]{"addr", func(s *event.Sock) val {
			if s.Daddr.IsValid() {
				return strVal(s.Daddr.String())
			}
			return addrIf(s.Saddr)
		}},
		field[event.Sock]{"port", func(s *event.Sock) val {
			if s.Daddr.IsValid() {
				return intVal(int64(s.Dport))
			}
			return intVal(int64(s.Sport))
		}},
	)
)

func (n *sockNode) get(k key) val       { return sockSchema.get((*event.Sock)(n), k) }
func (n *sockNode) size() int           { return len(sockSchema.fields) }
func (n *sockNode) at(i int) (val, val) { return sockSchema.at((*event.Sock)(n), i) }
func (n *sockNode) term(m *materializer) ast.Value {
	return sockSchema.term(m, (*event.Sock)(n))
}
func (n *skbNode) get(k key) val       { return skbSchema.get((*event.Sock)(n), k) }
func (n *skbNode) size() int           { return len(skbSchema.fields) }
func (n *skbNode) at(i int) (val, val) { return skbSchema.at((*event.Sock)(n), i) }
func (n *skbNode) term(m *materializer) ast.Value {
	return skbSchema.term(m, (*event.Sock)(n))
}
func (n *sockaddrNode) get(k key) val       { return sockaddrSchema.get((*event.Sock)(n), k) }
func (n *sockaddrNode) size() int           { return len(sockaddrSchema.fields) }
func (n *sockaddrNode) at(i int) (val, val) { return sockaddrSchema.at((*event.Sock)(n), i) }
func (n *sockaddrNode) term(m *materializer) ast.Value {
	return sockaddrSchema.term(m, (*event.Sock)(n))
}
