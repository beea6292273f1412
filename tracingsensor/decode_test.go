package tracingsensor

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/kprobes"
	"github.com/vigilsec/vigil/kprobes/abi"
	"github.com/vigilsec/vigil/process"
	"github.com/vigilsec/vigil/tracingpolicies"
)

type collect struct{ events []*event.Event }

func (c *collect) Export(ev *event.Event) { c.events = append(c.events, ev.Clone()) }

// decodeSensor is a sensor with no kernel state: a cache, a sink and the
// hooks a test registers, which is all the decoder reads.
func decodeSensor(t testing.TB) (*Sensor, *collect) {
	t.Helper()
	cache, err := process.NewCache(process.Config{NodeName: "node-a"})
	if err != nil {
		t.Fatal(err)
	}
	out := &collect{}
	s := &Sensor{cache: cache, sink: out, policies: map[string]*Policy{}}
	empty := map[uint32]*hookInfo{}
	s.hooks.Store(&empty)
	s.dec.s = s
	return s, out
}

// openatHook registers hook id 7: sys_openat of policy "p" reading a
// filename, an int, a file, a sock and a cred argument.
func openatHook(s *Sensor, mech kprobes.Mechanism, ret bool) {
	h := &tracingpolicies.Hook{Kind: tracingpolicies.HookSyscall, Functions: []string{"openat"}, Message: "opened",
		Tags: []string{"file"}, Return: ret,
		Args: []tracingpolicies.Arg{
			{Index: 1, Type: tracingpolicies.TypeFilename, Label: "filename"},
			{Index: 2, Type: tracingpolicies.TypeInt32, Label: "flags"},
			{Index: 3, Type: tracingpolicies.TypeFile, Label: "file"},
			{Index: 4, Type: tracingpolicies.TypeSock, Label: "sock"},
			{Index: 5, Type: tracingpolicies.TypeCred, Label: "cred"},
		}}
	p := &Policy{Name: "p"}
	info := newHookInfo(p, &tracingpolicies.CompiledHook{Source: h}, kprobes.HookTarget{ID: 7, Name: "openat"}, mech)
	s.register(map[uint32]*hookInfo{7: info})
}

func asBytes[T any](v *T) []byte {
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v))...)
}

// genRecord lays out a policy record with the given argument bytes.
func genRecord(r abi.GenEvent, args ...[]byte) []byte {
	r.Hdr.Op = abi.OpGeneric
	var data []byte
	for i, a := range args {
		r.ArgOff[i], r.ArgLen[i] = uint16(len(data)), uint16(len(a))
		data = append(data, a...)
	}
	r.Nargs = uint8(len(args))
	out := append(asBytes(&r), data...)
	return out
}

func TestDecodeRecord(t *testing.T) {
	s, out := decodeSensor(t)
	openatHook(s, kprobes.MechTracepoint, true)

	flags := make([]byte, 8)
	binary.LittleEndian.PutUint64(flags, 0xffffffff_80000042) // an int32: only the low half counts
	fa := abi.GenFileArg{Flags: 0x8000}
	file := append(asBytes(&fa), "/etc/shadow"...)
	sa := abi.GenSockArg{Family: 2, Type: 1, Protocol: 6, Sport: 40000, Dport: 443, Cookie: 99}
	sa.Saddr = netip.MustParseAddr("::ffff:127.0.0.1").As16()
	sa.Daddr = netip.MustParseAddr("::ffff:10.0.0.2").As16()
	cred := abi.Creds{Uid: 1000, Gid: 1001, Euid: 0, Egid: 0, CapEffective: 1 << 21}
	r := abi.GenEvent{HookId: 7, Action: uint32(abi.GenericGenActionGEN_ACT_POST), Ret: -13,
		Flags: uint32(abi.GenericGenEventFlagsGEN_EV_RETURN)}
	r.Hdr.Pid, r.Hdr.Tid, r.Hdr.Ktime = 42, 43, 1000
	r.ArgState[0] = uint8(abi.GenericGenArgStateGEN_ARGS_TRUNCATED)
	rec := genRecord(r, []byte("/etc/passwd"), flags, file, asBytes(&sa), asBytes(&cred))
	if err := s.HandleRecord(rec); err != nil {
		t.Fatal(err)
	}
	if len(out.events) != 1 {
		t.Fatalf("%d events, want 1", len(out.events))
	}
	ev := out.events[0]
	if ev.Type != event.TypeProcessKprobe || ev.Process.PID != 42 {
		t.Errorf("event type %v of pid %d, want process_kprobe of 42 (a process the cache does not know)", ev.Type, ev.Process.PID)
	}
	want := &event.Kprobe{
		FunctionName: kprobes.SyscallSymbol("openat"), Mechanism: "tracepoint", PolicyName: "p",
		Message: "opened", Tags: []string{"file"}, Action: "KPROBE_ACTION_POST",
		Args: []event.Arg{
			{Kind: event.ArgString, Str: "/etc/passwd", Label: "filename", Truncated: true},
			{Kind: event.ArgInt, Int: -2147483582, Label: "flags"},
			{Kind: event.ArgFile, Str: "/etc/shadow", Flags: 0x8000, Label: "file"},
			{Kind: event.ArgSock, Label: "sock", Sock: &event.Sock{Family: 2, Type: 1, Protocol: 6, Sport: 40000, Dport: 443, Cookie: 99,
				Saddr: netip.MustParseAddr("127.0.0.1"), Daddr: netip.MustParseAddr("10.0.0.2")}},
			{Kind: event.ArgCred, Label: "cred", Uint: 1 << 21, Cred: &event.Credentials{UID: 1000, GID: 1001}},
		},
		Return: &event.Arg{Kind: event.ArgLong, Int: -13},
	}
	if diff := cmp.Diff(want, ev.Kprobe, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("decoded kprobe (-want +got):\n%s", diff)
	}
}

func TestDecodeActions(t *testing.T) {
	for _, tc := range []struct {
		name       string
		mech       kprobes.Mechanism
		action     abi.GenAction
		flags      abi.GenEventFlags
		wantAction string
		wantNote   string
		monitor    bool
	}{
		{"post", kprobes.MechLSM, abi.GenericGenActionGEN_ACT_POST, 0, "KPROBE_ACTION_POST", "", false},
		{"sigkill at entry", kprobes.MechTracepoint, abi.GenericGenActionGEN_ACT_SIGKILL, 0, "KPROBE_ACTION_SIGKILL",
			"the signal is delivered after the call: the call itself was not stopped (use Override on an LSM hook to deny it)", false},
		{"sigkill in monitor mode", kprobes.MechLSM, abi.GenericGenActionGEN_ACT_SIGKILL, abi.GenericGenEventFlagsGEN_EV_MONITOR,
			"KPROBE_ACTION_SIGKILL", "monitor mode: the action was not taken", true},
		{"protected process", kprobes.MechLSM, abi.GenericGenActionGEN_ACT_OVERRIDE, abi.GenericGenEventFlagsGEN_EV_PROTECTED,
			"KPROBE_ACTION_OVERRIDE", "not taken: the process is protected (the agent, its parents, PID 1, a protected binary or a kernel thread); to act on it, name it exactly (matchBinaries In, matchPIDs In) and set the policy option allow-protected-enforcement", false},
		{"signal refused", kprobes.MechLSM, abi.GenericGenActionGEN_ACT_SIGNAL, abi.GenericGenEventFlagsGEN_EV_ACTION_FAILED,
			"KPROBE_ACTION_SIGNAL", "the kernel refused to send the signal", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, out := decodeSensor(t)
			openatHook(s, tc.mech, false)
			r := abi.GenEvent{HookId: 7, Action: uint32(tc.action), Flags: uint32(tc.flags), Errno: -1, Signal: 9}
			if err := s.HandleRecord(genRecord(r)); err != nil {
				t.Fatal(err)
			}
			kp := out.events[0].Kprobe
			if kp.Action != tc.wantAction || kp.ActionNote != tc.wantNote || kp.Monitor != tc.monitor {
				t.Errorf("action %q note %q monitor %v; want %q %q %v", kp.Action, kp.ActionNote, kp.Monitor, tc.wantAction, tc.wantNote, tc.monitor)
			}
		})
	}
}

func TestDecodeRefuses(t *testing.T) {
	s, out := decodeSensor(t)
	openatHook(s, kprobes.MechLSM, false)
	var short *abi.ShortRecordError
	if err := s.HandleRecord(make([]byte, 10)); !errors.As(err, &short) {
		t.Errorf("short record: %v, want a ShortRecordError", err)
	}
	if err := s.HandleRecord(genRecord(abi.GenEvent{HookId: 8})); err == nil {
		t.Error("record of an unregistered hook decoded")
	}
	if s.unknown.Load() != 1 {
		t.Errorf("unknown hooks counted %d, want 1", s.unknown.Load())
	}
	if len(out.events) != 0 {
		t.Errorf("%d events from refused records", len(out.events))
	}
}

// FuzzDecodeRecord: argument offsets and lengths come from the kernel; any
// value stays within the record, and the decoder never panics.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(uint8(5), []byte("/etc/passwd\x00\x01\x02\x03\x04\x05\x06\x07"), uint16(0), uint16(11), uint16(11), uint16(8), uint16(60000), uint16(9))
	f.Add(uint8(200), []byte{}, uint16(65535), uint16(65535), uint16(0), uint16(0), uint16(1), uint16(1))
	f.Fuzz(func(t *testing.T, nargs uint8, data []byte, off0, len0, off1, len1, off2, len2 uint16) {
		s, out := decodeSensor(t)
		openatHook(s, kprobes.MechLSM, false)
		r := abi.GenEvent{HookId: 7, Nargs: nargs}
		r.Hdr.Op = abi.OpGeneric
		r.ArgOff[0], r.ArgLen[0], r.ArgOff[1], r.ArgLen[1], r.ArgOff[2], r.ArgLen[2] = off0, len0, off1, len1, off2, len2
		rec := append(asBytes(&r), data...)
		if err := s.HandleRecord(rec); err != nil {
			t.Fatal(err)
		}
		kp := out.events[0].Kprobe
		if len(kp.Args) > min(int(nargs), 5) {
			t.Fatalf("%d args from nargs %d and 5 specs", len(kp.Args), nargs)
		}
		for _, a := range kp.Args {
			if len(a.Str) > len(data) {
				t.Errorf("argument %s of %d bytes from %d bytes of data", a.Label, len(a.Str), len(data))
			}
		}
	})
}
