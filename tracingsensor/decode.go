package tracingsensor

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/cilium/ebpf"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/kprobes"
	"github.com/vigilsec/vigil/kprobes/abi"
	"github.com/vigilsec/vigil/observer"
	"github.com/vigilsec/vigil/tracingpolicies"
)

// hookInfo is what one hook id means, for decoding its records.
type hookInfo struct {
	policy   *Policy
	hook     *tracingpolicies.Hook
	target   string
	function string
	evType   event.Type
	// offset is the file offset of a uprobe placed by offset.
	offset    uint64
	mechanism kprobes.Mechanism
	// entryOnly is set when the hook runs before the call and cannot stop
	// it: a signal arrives only after the call completed.
	entryOnly bool
	unloaded  atomic.Bool
}

func newHookInfo(p *Policy, h *tracingpolicies.CompiledHook, t kprobes.HookTarget, mech kprobes.Mechanism) *hookInfo {
	info := &hookInfo{policy: p, hook: h.Source, target: t.Name, mechanism: mech}
	switch h.Source.Kind {
	case tracingpolicies.HookKprobe:
		info.evType, info.function = event.TypeProcessKprobe, t.Name
	case tracingpolicies.HookSyscall:
		info.evType, info.function = event.TypeProcessKprobe, kprobes.SyscallSymbol(t.Name)
	case tracingpolicies.HookLSM:
		info.evType, info.function = event.TypeProcessLSM, t.Name
	case tracingpolicies.HookTracepoint:
		info.evType, info.function = event.TypeProcessTracepoint, t.Name
	case tracingpolicies.HookUsdt:
		// Signals are delivered before the probe's instruction runs, as
		// a uprobe's.
		info.evType, info.function = event.TypeProcessUsdt, h.Source.Probe
	case tracingpolicies.HookUprobe:
		// A signal sent by a uprobe is delivered before the function's
		// first instruction runs.
		info.evType, info.function = event.TypeProcessUprobe, t.Name
		if offs := h.Source.Offsets; len(offs) > 0 {
			info.function = ""
			for i, tt := range h.Request.Targets {
				if tt.ID == t.ID {
					info.offset = offs[i]
				}
			}
		}
	}
	switch mech {
	case kprobes.MechKprobe, kprobes.MechKprobeMulti, kprobes.MechFentry, kprobes.MechTracepoint:
		info.entryOnly = !h.Source.Return
	}
	return info
}

// decoder turns policy records into events. It reuses its values; one
// goroutine (the observer's) uses it.
type decoder struct {
	s    *Sensor
	ev   event.Event
	kp   event.Kprobe
	args []event.Arg
	ret  event.Arg
}

// HandleRecord decodes one policy record and exports its event.
func (s *Sensor) HandleRecord(rec []byte) error {
	return s.dec.handle(rec)
}

// Routes are the opcodes this sensor's decoder reads.
func (s *Sensor) Routes() []observer.Route {
	return []observer.Route{{Op: abi.OpGeneric, Decode: s.HandleRecord}}
}

func (d *decoder) handle(rec []byte) error {
	r, data, err := abi.Generic(rec)
	if err != nil {
		return err
	}
	info := (*d.s.hooks.Load())[r.HookId]
	if info == nil {
		d.s.unknown.Add(1)
		return fmt.Errorf("policy record for unknown hook %d", r.HookId)
	}
	info.policy.events.Add(1)

	proc, parent := d.s.cache.Get(r.Hdr.Pid)
	if proc == nil {
		proc = &event.Process{PID: r.Hdr.Pid, TID: r.Hdr.Tid, Flags: event.FlagNoParent}
	}
	d.kp = event.Kprobe{
		FunctionName: info.function,
		UprobeOffset: info.offset,
		Mechanism:    string(info.mechanism),
		PolicyName:   info.policy.Name,
		Message:      info.hook.Message,
		Tags:         info.hook.Tags,
	}
	switch info.hook.Kind {
	case tracingpolicies.HookUprobe:
		d.kp.UprobePath = info.hook.Binary
	case tracingpolicies.HookUsdt:
		d.kp.UprobePath, d.kp.UsdtProvider = info.hook.Binary, info.hook.Provider
	}
	d.decodeArgs(r, data, info)
	d.kp.Args = d.args
	if r.Flags&uint32(abi.GenericGenEventFlagsGEN_EV_RETURN) != 0 {
		d.ret = event.Arg{Kind: event.ArgLong, Int: r.Ret}
		if ra := info.hook.ReturnArg; ra != nil && ra.Type != "" {
			d.ret = intArg(ra.Type, uint64(r.Ret), "")
		}
		d.kp.Return = &d.ret
	}
	d.action(r, info)

	d.ev = event.Event{
		Type:    info.evType,
		Time:    d.s.cache.Clock().Wall(r.Hdr.Ktime),
		Process: proc,
		Parent:  parent,
		Kprobe:  &d.kp,
	}
	if r.Flags&uint32(abi.GenericGenEventFlagsGEN_EV_FOLD_HEAD) != 0 {
		d.s.foldHead(r, &d.ev)
	}
	d.s.sink.Export(&d.ev)
	return nil
}

func (d *decoder) action(r *abi.GenEvent, info *hookInfo) {
	act := r.Action
	flags := r.Flags
	const (
		sigkill  = uint32(abi.GenericGenActionGEN_ACT_SIGKILL)
		signal   = uint32(abi.GenericGenActionGEN_ACT_SIGNAL)
		override = uint32(abi.GenericGenActionGEN_ACT_OVERRIDE)
	)
	switch {
	case act&override != 0:
		d.kp.Action = "KPROBE_ACTION_OVERRIDE"
		d.kp.Errno = r.Errno
	case act&sigkill != 0:
		d.kp.Action = "KPROBE_ACTION_SIGKILL"
	case act&signal != 0:
		d.kp.Action = "KPROBE_ACTION_SIGNAL"
	default:
		d.kp.Action = "KPROBE_ACTION_POST"
		return
	}
	d.kp.Signal = r.Signal
	switch {
	case flags&uint32(abi.GenericGenEventFlagsGEN_EV_MONITOR) != 0:
		d.kp.Monitor = true
		d.kp.ActionNote = "monitor mode: the action was not taken"
	case flags&uint32(abi.GenericGenEventFlagsGEN_EV_PROTECTED) != 0:
		d.kp.ActionNote = "not taken: the process is protected (the agent, its parents, PID 1, a protected binary or a kernel thread); to act on it, name it exactly (matchBinaries In, matchPIDs In) and set the policy option allow-protected-enforcement"
	case flags&uint32(abi.GenericGenEventFlagsGEN_EV_ACTION_FAILED) != 0:
		d.kp.ActionNote = "the kernel refused to send the signal"
	case act&override == 0 && info.entryOnly:
		d.kp.ActionNote = "the signal is delivered after the call: the call itself was not stopped (use Override on an LSM hook to deny it)"
	}
}

func (d *decoder) decodeArgs(r *abi.GenEvent, data []byte, info *hookInfo) {
	d.args = d.args[:0]
	n := min(int(r.Nargs), len(info.hook.Args), len(r.ArgOff))
	for i := 0; i < n; i++ {
		spec := info.hook.Args[i]
		if spec.Type == tracingpolicies.TypeNop {
			continue // holds its place; never read or reported
		}
		off, l := int(r.ArgOff[i]), int(r.ArgLen[i])
		if off > len(data) {
			off = len(data)
		}
		b := data[off:min(off+l, len(data))]
		a := decodeArg(spec.Type, b, spec.Label)
		if r.ArgState[i]&uint8(abi.GenericGenArgStateGEN_ARGS_TRUNCATED) != 0 {
			a.Truncated = true
		}
		d.args = append(d.args, a)
	}
}

func intArg(t tracingpolicies.ArgType, v uint64, label string) event.Arg {
	size, signed := t.IntSize()
	switch size {
	case 1:
		v &= 0xff
		if signed {
			v = uint64(int64(int8(v)))
		}
	case 2:
		v &= 0xffff
		if signed {
			v = uint64(int64(int16(v)))
		}
	case 4:
		v &= 0xffffffff
		if signed {
			v = uint64(int64(int32(v)))
		}
	}
	// Tetragon's kinds by width: int_arg and uint_arg hold 32 bits,
	// long_arg and size_arg 64.
	switch {
	case t == tracingpolicies.TypeSizeT, !signed && size == 8:
		return event.Arg{Kind: event.ArgSize, Uint: v, Label: label}
	case t == tracingpolicies.TypeCapability:
		return event.Arg{Kind: event.ArgCapability, Int: int64(v), Label: label}
	case signed && size == 8:
		return event.Arg{Kind: event.ArgLong, Int: int64(v), Label: label}
	case signed:
		return event.Arg{Kind: event.ArgInt, Int: int64(v), Label: label}
	}
	return event.Arg{Kind: event.ArgUint, Uint: v, Label: label}
}

func u64(b []byte) uint64 {
	if len(b) < 8 {
		var tmp [8]byte
		copy(tmp[:], b)
		return binary.LittleEndian.Uint64(tmp[:])
	}
	return binary.LittleEndian.Uint64(b)
}

// decodeArg turns the bytes the kernel wrote for one argument into an Arg.
func decodeArg(t tracingpolicies.ArgType, b []byte, label string) event.Arg {
	switch t {
	case tracingpolicies.TypeString, tracingpolicies.TypeFilename:
		return event.Arg{Kind: event.ArgString, Str: string(b), Label: label}
	case tracingpolicies.TypeCharBuf, tracingpolicies.TypeCharIovec:
		return event.Arg{Kind: event.ArgBytes, Bytes: append([]byte(nil), b...), Label: label}
	case tracingpolicies.TypeFd, tracingpolicies.TypeFile, tracingpolicies.TypePath, tracingpolicies.TypeLinuxBinprm, tracingpolicies.TypeDentry:
		a := event.Arg{Kind: event.ArgFile, Label: label}
		if t == tracingpolicies.TypePath || t == tracingpolicies.TypeDentry {
			a.Kind = event.ArgPath
		} else if t == tracingpolicies.TypeLinuxBinprm {
			a.Kind = event.ArgBinprm
		}
		if fa, path, ok := abi.FileArg(b); ok {
			a.Flags = fa.Flags
			if t == tracingpolicies.TypePath || t == tracingpolicies.TypeDentry {
				a.Flags = fa.Mode
			}
			a.Str = string(path)
		}
		return a
	case tracingpolicies.TypeSock, tracingpolicies.TypeSocket, tracingpolicies.TypeSkb, tracingpolicies.TypeSockaddr:
		kind := event.ArgSock
		switch t {
		case tracingpolicies.TypeSkb:
			kind = event.ArgSkb
		case tracingpolicies.TypeSockaddr:
			kind = event.ArgSockaddr
		}
		a := event.Arg{Kind: kind, Label: label}
		if sa, ok := abi.SockArg(b); ok {
			a.Sock = &event.Sock{
				Family: sa.Family, Type: sa.Type, Protocol: sa.Protocol, State: sa.State,
				Sport: sa.Sport, Dport: sa.Dport, Cookie: sa.Cookie,
				Saddr: sockAddr(sa.Family, sa.Saddr), Daddr: sockAddr(sa.Family, sa.Daddr),
			}
		}
		return a
	case tracingpolicies.TypeCred:
		a := event.Arg{Kind: event.ArgCred, Label: label}
		if c, ok := abi.CredArg(b); ok {
			a.Cred = &event.Credentials{UID: c.Uid, GID: c.Gid, EUID: c.Euid, EGID: c.Egid,
				SUID: c.Suid, SGID: c.Sgid, FSUID: c.Fsuid, FSGID: c.Fsgid}
			a.Uint = c.CapEffective
		}
		return a
	case tracingpolicies.TypeKernelCapT:
		return event.Arg{Kind: event.ArgKernelCapT, Uint: u64(b), Label: label}
	}
	return intArg(t, u64(b), label)
}

// sockAddr turns a 16-byte address (IPv4 v4-mapped) into an address; the
// zero address of an unset field stays invalid.
func sockAddr(family uint16, a [16]uint8) netip.Addr {
	if a == [16]uint8{} {
		return netip.Addr{}
	}
	addr := netip.AddrFrom16(a)
	if family == 2 || addr.Is4In6() {
		return addr.Unmap()
	}
	return addr
}

var nsFiles = map[tracingpolicies.NamespaceType]string{
	tracingpolicies.NSUts: "uts", tracingpolicies.NSIpc: "ipc", tracingpolicies.NSMnt: "mnt",
	tracingpolicies.NSPid: "pid", tracingpolicies.NSPidForChildren: "pid_for_children",
	tracingpolicies.NSNet: "net", tracingpolicies.NSTime: "time",
	tracingpolicies.NSTimeForChildren: "time_for_children", tracingpolicies.NSCgroup: "cgroup",
	tracingpolicies.NSUser: "user",
}

// initNSInodes are the fixed inodes of the initial namespaces, used when
// PID 1's namespaces cannot be read.
var initNSInodes = map[tracingpolicies.NamespaceType]uint32{
	tracingpolicies.NSIpc: 0xEFFFFFFF, tracingpolicies.NSUts: 0xEFFFFFFE, tracingpolicies.NSUser: 0xEFFFFFFD,
	tracingpolicies.NSPid: 0xEFFFFFFC, tracingpolicies.NSPidForChildren: 0xEFFFFFFC,
	tracingpolicies.NSCgroup: 0xEFFFFFFB, tracingpolicies.NSTime: 0xEFFFFFFA, tracingpolicies.NSTimeForChildren: 0xEFFFFFFA,
}

func hostNamespace(procRoot string, ns tracingpolicies.NamespaceType) (uint32, error) {
	if procRoot == "" {
		procRoot = "/proc"
	}
	link, err := os.Readlink(filepath.Join(procRoot, "1", "ns", nsFiles[ns]))
	if err != nil {
		if v, ok := initNSInodes[ns]; ok {
			return v, nil
		}
		return 0, fmt.Errorf("read the host's %s namespace: %w", ns, err)
	}
	i, j := strings.IndexByte(link, '['), strings.IndexByte(link, ']')
	if i < 0 || j < i {
		return 0, fmt.Errorf("unexpected namespace link %q", link)
	}
	v, err := strconv.ParseUint(link[i+1:j], 10, 32)
	return uint32(v), err
}

func ebpfPossibleCPUs() int {
	n, err := ebpf.PossibleCPU()
	if err != nil {
		return 1
	}
	return n
}
