package rules

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/exporter/encode"
)

// checkTyped compares the typed input of ev with the exported JSON of ev
// parsed (ParseInput(encode(ev))): the Rego value made from it, and every
// member read through it.
func checkTyped(t *testing.T, ev *event.Event, node string) {
	t.Helper()
	line := encode.AppendJSON(nil, ev, node, nil)
	want, _, err := ParseInput(line)
	if err != nil {
		t.Fatalf("%v: %s", err, line)
	}
	v := &view{ev: ev, nodeName: node}
	for _, m := range []*materializer{nil, {}} {
		got := m.input(v)
		if got.Compare(want) != 0 {
			t.Fatalf("typed input of %s\n%v\nwant\n%v", line, got, want)
		}
	}
	if err := sameValue(v.root(), want, "input"); err != nil {
		t.Fatalf("%v\nin %s", err, line)
	}
}

// sameValue compares what the evaluator reads from v with want, member by
// member: get, size and at of every composite.
func sameValue(v val, want ast.Value, path string) error {
	switch w := want.(type) {
	case ast.Object:
		if v.k != objKind {
			return fmt.Errorf("%s: %v, want an object", path, v.k)
		}
		for _, k := range w.Keys() {
			s := string(k.Value.(ast.String))
			if err := sameValue(v.n.get(nameKey(s)), w.Get(k).Value, path+"."+s); err != nil {
				return err
			}
		}
		n := 0
		for i := range v.n.size() {
			k, m := v.n.at(i)
			if !m.defined() {
				continue
			}
			n++
			if w.Get(ast.StringTerm(k.s)) == nil {
				return fmt.Errorf("%s: member %q the JSON does not have", path, k.s)
			}
			if err := sameValue(m, w.Get(ast.StringTerm(k.s)).Value, path+"."+k.s); err != nil {
				return err
			}
		}
		if n != w.Len() {
			return fmt.Errorf("%s: %d members, want %d", path, n, w.Len())
		}
		if v.n.get(nameKey("no_such_member")).defined() {
			return fmt.Errorf("%s: an unknown member is defined", path)
		}
	case *ast.Array:
		if v.k != arrKind || v.n.size() != w.Len() {
			return fmt.Errorf("%s: %v, want an array of %d", path, v.k, w.Len())
		}
		for i := range w.Len() {
			p := fmt.Sprintf("%s[%d]", path, i)
			if err := sameValue(v.n.get(keyOf(intVal(int64(i)))), w.Elem(i).Value, p); err != nil {
				return err
			}
			if _, e := v.n.at(i); !equal(e, fromAST(w.Elem(i).Value)) {
				return fmt.Errorf("%s: at gives %v", p, toAST(e, nil))
			}
		}
		if v.n.get(keyOf(intVal(int64(w.Len())))).defined() {
			return fmt.Errorf("%s: an element past the end", path)
		}
	default:
		if !equal(v, fromAST(w)) || v.k == numKind && v.numText() != string(w.(ast.Number)) {
			return fmt.Errorf("%s: %v, want %v", path, toAST(v, nil), w)
		}
	}
	return nil
}

// The typed input of an event is exactly the exported JSON of the event,
// parsed, for every recorded event and events with every kind of part.
func TestTypedInputIsTheExportedJSON(t *testing.T) {
	for _, lines := range [][][]byte{recorded(t), ordinary(t)} {
		evs, nodes := recordedEvents(t, lines)
		for i, ev := range evs {
			checkTyped(t, ev, nodes[i])
		}
	}
	for _, typ := range consumableList() {
		for i, s := range []string{"", "/usr/bin/curl", "bad\xff\xfe", `a\b`, "\x00\x1f\"\\", "k8s:app=x", "ns/name"} {
			ev := fuzzEvent(typ, s, "-c "+s, "shop", s, "app", s, []byte{10, 0, 0, byte(i)}, int64(i*7-3), uint64(1<<uint(i*9)), int64(1700000000+i))
			checkTyped(t, ev, s)
		}
	}
}

// FuzzTypedInput compares the typed input with the parsed JSON of events
// built from fuzzed strings and numbers.
func FuzzTypedInput(f *testing.F) {
	f.Add(uint8(1), "/usr/bin/curl", "-s https://x", "shop", "web", "app", "web", []byte{1, 2}, int64(-4), uint64(9), int64(1700000000))
	f.Add(uint8(5), "bad\xff\xfe", "\x00\x1f\"\\", "</script>", "\u2028", "k\n", "v\t", []byte{}, int64(0), uint64(0), int64(-1))
	f.Add(uint8(3), "", "", "", "", "", "", []byte(nil), int64(1<<62), uint64(1<<63), int64(253402300800))
	f.Add(uint8(4), "syscalls/sys_enter_openat", "a b 'c'", "ns", "", "", "", []byte("x"), int64(21), uint64(1<<41-1), int64(0))
	f.Add(uint8(6), "a/b", `x\y`, "k", "k", "k", "v", []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, int64(-1), uint64(6), int64(5))
	f.Fuzz(func(t *testing.T, typ uint8, s1, s2, s3, s4, s5, s6 string, raw []byte, i int64, u uint64, sec int64) {
		types := consumableList()
		ev := fuzzEvent(types[int(typ)%len(types)], s1, s2, s3, s4, s5, s6, raw, i, u, sec)
		checkTyped(t, ev, s3)
	})
}

func consumableList() []event.Type {
	var out []event.Type
	for _, t := range event.Types() {
		if consumable(t) {
			out = append(out, t)
		}
	}
	return out
}

// fuzzEvent builds an event of type typ whose parts are all set from the
// strings and numbers given: every argument kind, pods with labels and a
// container, flows with endpoints and policies.
func fuzzEvent(typ event.Type, s1, s2, s3, s4, s5, s6 string, raw []byte, i int64, u uint64, sec int64) *event.Event {
	ts := time.Unix(sec%(1<<40), i%1e9)
	pod := &event.Pod{Namespace: s3, Name: s4, UID: s2, Labels: []event.Label{{Key: s5, Value: s6}, {Key: s1, Value: s2}},
		Workload: s4, WorkloadKind: s5, Container: event.Container{ID: s2, Name: s4, ImageName: s5, ImageID: s6, StartTime: ts}}
	setuid := uint32(u)
	proc := &event.Process{ExecID: s2, ParentExecID: s3, PID: uint32(u), TID: uint32(u >> 32), UID: uint32(i),
		AUID: uint32(i >> 8), CWD: s2, Binary: s1, Arguments: s2, Flags: event.Flags(u), StartTime: ts,
		CapPermitted: u, CapEffective: uint64(i), CapInheritable: u ^ uint64(i),
		Namespaces: event.Namespaces{PidInum: uint32(u), MntInum: uint32(u >> 8), NetInum: uint32(i), PidIsHost: i%2 == 0, NetIsHost: u%3 == 0},
		Creds:      event.Credentials{UID: uint32(u), GID: uint32(i), EUID: 1, FSGID: 2},
		CgroupID:   u, BinaryProperties: event.BinaryProperties{Setuid: &setuid, InodeNumber: u, InodeLinks: uint32(i),
			Memfd: i%3 == 0, UpperLayer: u%2 == 1, Deleted: i%5 == 0, PrivilegesChanged: event.PrivilegeChanges(u % 8)},
	}
	if len(s4)%2 == 0 {
		proc.Pod = pod
	}
	if len(s3)%3 == 1 {
		proc.BinaryProperties = event.BinaryProperties{Setgid: &setuid}
	}
	parent := &event.Process{ExecID: s3, Binary: s5, Arguments: s6, Pod: proc.Pod}
	addr, _ := netip.AddrFromSlice(raw)
	sock := &event.Sock{Family: uint16(u), Type: uint16(i), Protocol: uint16(u >> 16), State: uint8(i),
		Saddr: addr, Daddr: addr, Sport: uint16(u), Dport: uint16(i), Cookie: u}
	if len(raw)%2 == 1 {
		sock.Daddr = netip.Addr{}
	}
	var args []event.Arg
	for k := event.ArgKind(0); k <= event.ArgLong+1; k++ {
		a := event.Arg{Kind: k, Label: s6, Int: i, Uint: u, Str: s5, Bytes: raw,
			Truncated: i%2 == 1, Flags: uint32(u), Sock: sock, Cred: &event.Credentials{UID: uint32(u)}}
		if k%3 == 0 {
			a.Sock, a.Cred, a.Label = nil, nil, ""
		}
		args = append(args, a)
	}
	ev := &event.Event{Type: typ, Time: ts, Process: proc, Parent: parent}
	if len(s6)%4 == 3 {
		ev.Parent = nil
	}
	switch typ {
	case event.TypeProcessExit:
		ev.Exit = &event.Exit{Status: uint32(i), Signal: uint32(u % 70), CoreDumped: i%2 == 0}
	case event.TypeProcessKprobe, event.TypeProcessTracepoint, event.TypeProcessLSM:
		ev.Kprobe = &event.Kprobe{FunctionName: s1, Mechanism: s2, Args: args, Return: &args[int(u%uint64(len(args)))],
			Action: s3, Monitor: i%2 == 0, ActionNote: s4, Errno: int32(i), Signal: uint32(u % 70),
			PolicyName: s5, Message: s6, Tags: []string{s1, s6}}
		if u%2 == 0 {
			ev.Kprobe.Repeats = &event.Repeats{Count: u, First: ts, Last: ts.Add(time.Duration(i))}
		}
		if strings.Contains(s1, "nil") {
			ev.Kprobe = nil
		}
	case event.TypeFlow:
		ev.Flow = &event.Flow{Phase: event.FlowPhase(u % 5), Verdict: event.Verdict(i % 5), DropReasonDesc: s1,
			Source: addr, Destination: addr, Protocol: uint8(u), SourcePort: uint16(u), DestinationPort: uint16(i),
			TCPFlags: event.TCPFlags(u >> 8), SourceEndpoint: event.Endpoint{Identity: uint32(u), Namespace: s3,
				PodName: s4, Labels: []string{s5}, Workloads: []event.Workload{{Name: s6, Kind: s1}}},
			DestEndpoint: event.Endpoint{Labels: []string{s1, s2}, PodName: s6},
			Direction:    event.Direction(u % 4), IsReply: i%2 == 0, EgressDeniedBy: []string{s2},
			IngressDeniedBy: []string{s3 + "/" + s4}, PolicyNames: []string{s4}, BytesSent: u, BytesReceived: u >> 1,
			PacketsSent: uint64(i), PacketsReceived: 3, Count: uint64(i)}
		switch u % 7 {
		case 0:
			ev.Flow.Protocol = event.ProtoTCP
		case 1:
			ev.Flow.Protocol = event.ProtoUDP
		case 2:
			ev.Flow = nil
		}
	}
	return ev
}
