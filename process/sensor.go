package process

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/vigilsec/vigil/kprobes"
	"github.com/vigilsec/vigil/kprobes/abi"
)

// DefaultRingBufferSize is the size of the event ring buffer in bytes.
const DefaultRingBufferSize = 8 << 20

// DefaultMaxProcesses bounds the kernel's table of live processes.
const DefaultMaxProcesses = 32768

// SensorOptions configure the process sensor. The zero value means defaults.
type SensorOptions struct {
	// RingBufferSize is the size of the event ring buffer in bytes: a power
	// of two and a multiple of the page size.
	RingBufferSize uint32
	// MaxProcesses bounds the kernel's table of live processes.
	MaxProcesses uint32
	// AgentPID is the agent's own process, whose events are never reported.
	// Zero means the calling process.
	AgentPID uint32
	// RawTracepoints forces the raw tracepoint programs even where tp_btf
	// works (the fallback path, selectable for tests).
	RawTracepoints bool
	// PinDir, when set, is a directory on a BPF file system where the
	// links (exec, fork, exit) and the maps a later agent reads
	// (PinnedMaps) are pinned, so that the programs keep the process table
	// current after the agent exits. Close leaves the pins; removing them
	// detaches the programs.
	PinDir string
}

// PinnedMaps are the maps of the process sensor pinned under
// SensorOptions.PinDir: the protected processes (a later agent adds itself
// to the table of the programs it takes over from), the ring buffer and its
// loss counters (what the programs wrote while no agent read them).
var PinnedMaps = []string{abi.ProcessMapProtectedTgids, abi.ProcessMapEvents, abi.ProcessMapRingReader}

// ValidateRingBufferSize checks a ring buffer size: a power of two and a
// multiple of the page size.
func ValidateRingBufferSize(n uint64) error {
	page := uint64(os.Getpagesize())
	if n < page || n&(n-1) != 0 || n > 1<<30 {
		return fmt.Errorf("%d is not a power of two between the page size (%d) and 1 GiB", n, page)
	}
	return nil
}

// Sensor is the loaded and attached process lifecycle programs and
// their maps. Close detaches and unloads everything.
type Sensor struct {
	coll      *ebpf.Collection
	links     []link.Link
	mechanism kprobes.Mechanism
}

// NewSensor loads the process lifecycle programs and attaches them to the
// sched_process_{exec,fork,exit} tracepoints, with tp_btf when the kernel
// has it and raw tracepoints otherwise.
func NewSensor(opts *SensorOptions, f *kprobes.Features) (_ *Sensor, err error) {
	var o SensorOptions
	if opts != nil {
		o = *opts
	}
	if o.RingBufferSize == 0 {
		o.RingBufferSize = DefaultRingBufferSize
	}
	if err := ValidateRingBufferSize(uint64(o.RingBufferSize)); err != nil {
		return nil, fmt.Errorf("ring buffer size: %w", err)
	}
	if o.MaxProcesses == 0 {
		o.MaxProcesses = DefaultMaxProcesses
	}
	if o.AgentPID == 0 {
		o.AgentPID = uint32(os.Getpid())
	}

	spec, err := abi.LoadProcess()
	if err != nil {
		return nil, fmt.Errorf("load process object: %w", err)
	}
	spec.Maps[abi.ProcessMapEvents].MaxEntries = o.RingBufferSize
	spec.Maps[abi.ProcessMapProcs].MaxEntries = o.MaxProcesses
	if err := spec.Variables["agent_tgid"].Set(o.AgentPID); err != nil {
		return nil, fmt.Errorf("set agent_tgid: %w", err)
	}

	useBTF := !o.RawTracepoints && (f == nil || f.Has(kprobes.FeatureTpBTF))
	keep, drop := "tp_btf_", "raw_tp_"
	mech := kprobes.MechTracepoint
	if !useBTF {
		keep, drop = drop, keep
		mech = kprobes.MechRawTracepoint
	}
	for name := range spec.Programs {
		if len(name) >= len(drop) && name[:len(drop)] == drop {
			delete(spec.Programs, name)
		}
	}

	coll, err := kprobes.LoadCollection(spec, ebpf.CollectionOptions{})
	if err != nil {
		return nil, fmt.Errorf("load process programs: %w", kprobes.VerifierHint(err))
	}
	s := &Sensor{coll: coll, mechanism: mech}
	defer func() {
		if err != nil {
			s.Close()
			if o.PinDir != "" {
				os.RemoveAll(o.PinDir)
			}
		}
	}()

	zero := uint32(0)
	if err := coll.Maps[abi.ProcessMapProcessConfigMap].Put(zero, abi.ProcessConfig{}); err != nil {
		return nil, fmt.Errorf("init process config: %w", err)
	}
	// Attach exit and fork before exec so that no process that execs after
	// this call can be missing its exit.
	for _, ev := range []string{"exit", "fork", "exec"} {
		prog := coll.Programs[keep+ev]
		var l link.Link
		if useBTF {
			l, err = link.AttachTracing(link.TracingOptions{Program: prog})
		} else {
			l, err = link.AttachRawTracepoint(link.RawTracepointOptions{Name: "sched_process_" + ev, Program: prog})
		}
		if err != nil {
			return nil, fmt.Errorf("attach sched_process_%s (%s): %w", ev, mech, err)
		}
		s.links = append(s.links, l)
		if o.PinDir != "" {
			if err := kprobes.PinLink(l, filepath.Join(o.PinDir, ev)); err != nil {
				return nil, err
			}
		}
	}
	if o.PinDir != "" {
		for _, name := range PinnedMaps {
			if err := kprobes.PinMap(coll.Maps[name], filepath.Join(o.PinDir, name)); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// Mechanism says how the programs are attached: tracepoint (tp_btf) or
// raw_tracepoint.
func (s *Sensor) Mechanism() kprobes.Mechanism { return s.mechanism }

// Events is the ring buffer every record is written to.
func (s *Sensor) Events() *ebpf.Map { return s.coll.Maps[abi.ProcessMapEvents] }

// SharedMaps are the maps the other sensors' programs use as their own, by
// their name in the C: the ring buffer every record goes to and its loss
// counters, the table of live processes and the path scratch space.
func (s *Sensor) SharedMaps() map[string]*ebpf.Map {
	out := map[string]*ebpf.Map{}
	for _, name := range []string{abi.ProcessMapEvents, abi.ProcessMapRingReader, abi.ProcessMapProcs, abi.ProcessMapPathScratchMap, abi.ProcessMapProtectedTgids} {
		out[name] = s.coll.Maps[name]
	}
	return out
}

// Procs is the kernel's table of live processes (tgid -> abi.ProcEntry).
func (s *Sensor) Procs() *ebpf.Map { return s.coll.Maps[abi.ProcessMapProcs] }

// RingReader is the map the programs share with the ring buffer's reader
// (abi.ReaderState): its wakeup request and the loss counters.
func (s *Sensor) RingReader() *ebpf.Map { return s.coll.Maps[abi.ProcessMapRingReader] }

// Lost returns the number of records the kernel failed to write to the ring
// buffer, per opcode, since load.
func (s *Sensor) Lost() ([abi.OpMax]uint64, error) {
	var st abi.ReaderState
	if err := s.RingReader().Lookup(uint32(0), &st); err != nil {
		return [abi.OpMax]uint64{}, fmt.Errorf("read lost counters: %w", err)
	}
	return st.Lost, nil
}

// LostTotal returns the number of records of every opcode the kernel
// failed to write to the ring buffer since load.
func (s *Sensor) LostTotal() (uint64, error) {
	lost, err := s.Lost()
	var n uint64
	for _, l := range lost {
		n += l
	}
	return n, err
}

// ExecFilters select processes whose exec and exit events are dropped in the
// kernel.
type ExecFilters struct {
	CgroupIDs []uint64
	PidNS     []uint32
	// Binaries are exact executable paths (as reported in events).
	Binaries []string
}

// SetExecFilters replaces the exec/exit filters. It applies to execs from now
// on.
func (s *Sensor) SetExecFilters(f ExecFilters) error {
	for _, b := range f.Binaries {
		if len(b) >= len(abi.BinaryKey{}.Path) {
			return fmt.Errorf("binary filter %q: paths are limited to %d bytes", b, len(abi.BinaryKey{}.Path)-1)
		}
	}
	if err := kprobes.ReplaceSet(s.coll.Maps[abi.ProcessMapFilterCgroupIds], f.CgroupIDs); err != nil {
		return fmt.Errorf("cgroup filter: %w", err)
	}
	if err := kprobes.ReplaceSet(s.coll.Maps[abi.ProcessMapFilterPidnsIds], f.PidNS); err != nil {
		return fmt.Errorf("pid namespace filter: %w", err)
	}
	keys := make([]abi.BinaryKey, len(f.Binaries))
	for i, b := range f.Binaries {
		keys[i] = BinaryKey(b)
	}
	if err := kprobes.ReplaceSet(s.coll.Maps[abi.ProcessMapFilterBinaryPaths], keys); err != nil {
		return fmt.Errorf("binary filter: %w", err)
	}
	cfg := abi.ProcessConfig{
		FilterCgroups:  boolU32(len(f.CgroupIDs) > 0),
		FilterPidns:    boolU32(len(f.PidNS) > 0),
		FilterBinaries: boolU32(len(f.Binaries) > 0),
	}
	if err := s.coll.Maps[abi.ProcessMapProcessConfigMap].Put(uint32(0), cfg); err != nil {
		return fmt.Errorf("update process config: %w", err)
	}
	return nil
}

func boolU32(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// Close detaches the programs and releases the maps; programs pinned under
// SensorOptions.PinDir stay attached until their pins are removed.
func (s *Sensor) Close() error {
	var errs []error
	for i := len(s.links) - 1; i >= 0; i-- {
		errs = append(errs, s.links[i].Close())
	}
	s.links = nil
	if s.coll != nil {
		s.coll.Close()
		s.coll = nil
	}
	return errors.Join(errs...)
}

// SeedProcess records a process that was running before the sensor loaded
// in the kernel's process table, unless the kernel already has a fresher
// entry for it.
func (s *Sensor) SeedProcess(pid, ppid uint32, binary string, startKtime uint64) error {
	var e abi.ProcEntry
	e.ExecKtime = startKtime
	e.Ppid = ppid
	e.BinLen = uint32(abi.PutCString(e.Bin[:], binary))
	err := s.Procs().Update(pid, e, ebpf.UpdateNoExist)
	if err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
		return fmt.Errorf("seed process %d: %w", pid, err)
	}
	return nil
}

// BinaryKey is the key of an executable path in the process sensor's maps.
func BinaryKey(path string) abi.BinaryKey {
	var k abi.BinaryKey
	abi.PutCString(k.Path[:], path)
	return k
}

// FollowBinaries is the table of executables whose processes (and their
// descendants) get follow bits at exec.
func (s *Sensor) FollowBinaries() *ebpf.Map { return s.coll.Maps[abi.ProcessMapFollowBinaries] }

// UpdateFollowMasks walks the kernel's process table, parents before
// children, and lets update say which follow bits to add to and clear from
// each process, given the process's binary and its parent's new mask.
func (s *Sensor) UpdateFollowMasks(update func(pid, ppid uint32, binary string, parentMask uint64) (add, clear uint64)) error {
	m := s.Procs()
	type proc struct {
		pid uint32
		e   abi.ProcEntry
	}
	var all []proc
	var pid uint32
	var e abi.ProcEntry
	it := m.Iterate()
	for it.Next(&pid, &e) {
		all = append(all, proc{pid, e})
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read process table: %w", err)
	}
	byPID := make(map[uint32]int, len(all))
	for i, p := range all {
		byPID[p.pid] = i
	}
	done := make([]bool, len(all))
	var visit func(i int, depth int)
	visit = func(i, depth int) {
		if done[i] {
			return
		}
		p := &all[i]
		var parentMask uint64
		if j, ok := byPID[p.e.Ppid]; ok && j != i && depth < 64 {
			visit(j, depth+1)
			parentMask = all[j].e.FollowMask
		}
		bin := abi.CString(p.e.Bin[:min(int(p.e.BinLen), len(p.e.Bin))])
		add, clear := update(p.pid, p.e.Ppid, string(bin), parentMask)
		p.e.FollowMask = (p.e.FollowMask | add) &^ clear
		done[i] = true
	}
	for i := range all {
		visit(i, 0)
		if err := m.Update(all[i].pid, all[i].e, ebpf.UpdateExist); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("update process %d: %w", all[i].pid, err)
		}
	}
	return nil
}

// CountRecords reads what is left in a ring buffer of the process sensor
// (one an earlier agent pinned and no longer reads) and returns how many
// records it held. The records are consumed.
func CountRecords(events *ebpf.Map) (uint64, error) {
	r, err := ringbuf.NewReader(events)
	if err != nil {
		return 0, fmt.Errorf("read ring buffer: %w", err)
	}
	defer r.Close()
	r.SetDeadline(time.Now())
	var n uint64
	var rec ringbuf.Record
	for limit := uint64(events.MaxEntries()) / 8; n < limit; n++ {
		if err := r.ReadInto(&rec); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				err = nil
			}
			return n, err
		}
	}
	return n, nil
}
