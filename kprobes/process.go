package kprobes

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Record opcodes, the first byte of every ring buffer record.
const (
	OpExec    = uint8(ProcessVigilOpVIGIL_OP_EXEC)
	OpExit    = uint8(ProcessVigilOpVIGIL_OP_EXIT)
	OpFork    = uint8(ProcessVigilOpVIGIL_OP_FORK)
	OpGeneric = uint8(ProcessVigilOpVIGIL_OP_GENERIC)
	OpMax     = int(ProcessVigilOpVIGIL_OP_MAX)
)

// DefaultRingBufferSize is the size of the event ring buffer in bytes.
const DefaultRingBufferSize = 8 << 20

// DefaultMaxProcesses bounds the kernel's table of live processes.
const DefaultMaxProcesses = 32768

// ProcessOptions configure the process sensor. The zero value means defaults.
type ProcessOptions struct {
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
}

// ValidateRingBufferSize checks a ring buffer size: a power of two and a
// multiple of the page size.
func ValidateRingBufferSize(n uint64) error {
	page := uint64(os.Getpagesize())
	if n < page || n&(n-1) != 0 || n > 1<<30 {
		return fmt.Errorf("%d is not a power of two between the page size (%d) and 1 GiB", n, page)
	}
	return nil
}

// ProcessSensor is the loaded and attached process lifecycle programs and
// their maps. Close detaches and unloads everything.
type ProcessSensor struct {
	coll      *ebpf.Collection
	links     []link.Link
	mechanism Mechanism
}

// NewProcessSensor loads the process lifecycle programs and attaches them to the
// sched_process_{exec,fork,exit} tracepoints, with tp_btf when the kernel
// has it and raw tracepoints otherwise.
func NewProcessSensor(opts *ProcessOptions, f *Features) (_ *ProcessSensor, err error) {
	var o ProcessOptions
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

	spec, err := LoadProcess()
	if err != nil {
		return nil, fmt.Errorf("load process object: %w", err)
	}
	spec.Maps["events"].MaxEntries = o.RingBufferSize
	spec.Maps["procs"].MaxEntries = o.MaxProcesses
	if err := spec.Variables["agent_tgid"].Set(o.AgentPID); err != nil {
		return nil, fmt.Errorf("set agent_tgid: %w", err)
	}

	useBTF := !o.RawTracepoints && (f == nil || f.Has(FeatureTpBTF))
	keep, drop := "tp_btf_", "raw_tp_"
	mech := MechTracepoint
	if !useBTF {
		keep, drop = drop, keep
		mech = MechRawTracepoint
	}
	for name := range spec.Programs {
		if len(name) >= len(drop) && name[:len(drop)] == drop {
			delete(spec.Programs, name)
		}
	}

	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, fmt.Errorf("load process programs: %w", verifierHint(err))
	}
	s := &ProcessSensor{coll: coll, mechanism: mech}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	zero := uint32(0)
	if err := coll.Maps["process_config_map"].Put(zero, ProcessProcessConfig{}); err != nil {
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
	}
	return s, nil
}

// verifierHint makes a verifier rejection print the end of its log, which
// names the failing instruction.
func verifierHint(err error) error {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		return fmt.Errorf("%+v", ve)
	}
	return err
}

// Mechanism says how the programs are attached: tracepoint (tp_btf) or
// raw_tracepoint.
func (s *ProcessSensor) Mechanism() Mechanism { return s.mechanism }

// Events is the ring buffer every record is written to.
func (s *ProcessSensor) Events() *ebpf.Map { return s.coll.Maps["events"] }

// Procs is the kernel's table of live processes (tgid -> ProcessProcEntry).
func (s *ProcessSensor) Procs() *ebpf.Map { return s.coll.Maps["procs"] }

// LostCounters is the per-CPU table of records the kernel failed to reserve,
// indexed by opcode.
func (s *ProcessSensor) LostCounters() *ebpf.Map { return s.coll.Maps["lost_counters"] }

// Lost returns the number of records the kernel failed to write to the ring
// buffer, per opcode, since load.
func (s *ProcessSensor) Lost() ([OpMax]uint64, error) {
	return ReadLost(s.LostCounters())
}

// ReadLost sums a per-CPU loss counter map by opcode.
func ReadLost(m *ebpf.Map) ([OpMax]uint64, error) {
	var out [OpMax]uint64
	var perCPU []uint64
	for op := uint32(0); op < uint32(OpMax); op++ {
		if err := m.Lookup(op, &perCPU); err != nil {
			return out, fmt.Errorf("read lost counters: %w", err)
		}
		for _, v := range perCPU {
			out[op] += v
		}
	}
	return out, nil
}

// Filters select processes whose exec and exit events are dropped in the
// kernel.
type Filters struct {
	CgroupIDs []uint64
	PidNS     []uint32
	// Binaries are exact executable paths (as reported in events).
	Binaries []string
}

// SetFilters replaces the exec/exit filters. It applies to execs from now
// on.
func (s *ProcessSensor) SetFilters(f Filters) error {
	for _, b := range f.Binaries {
		if len(b) >= len(ProcessBinaryKey{}.Path) {
			return fmt.Errorf("binary filter %q: paths are limited to %d bytes", b, len(ProcessBinaryKey{}.Path)-1)
		}
	}
	if err := replaceSet(s.coll.Maps["filter_cgroup_ids"], f.CgroupIDs); err != nil {
		return fmt.Errorf("cgroup filter: %w", err)
	}
	if err := replaceSet(s.coll.Maps["filter_pidns_ids"], f.PidNS); err != nil {
		return fmt.Errorf("pid namespace filter: %w", err)
	}
	keys := make([]ProcessBinaryKey, len(f.Binaries))
	for i, b := range f.Binaries {
		for j := 0; j < len(b); j++ {
			keys[i].Path[j] = int8(b[j])
		}
	}
	if err := replaceSet(s.coll.Maps["filter_binary_paths"], keys); err != nil {
		return fmt.Errorf("binary filter: %w", err)
	}
	cfg := ProcessProcessConfig{
		FilterCgroups:  boolU32(len(f.CgroupIDs) > 0),
		FilterPidns:    boolU32(len(f.PidNS) > 0),
		FilterBinaries: boolU32(len(f.Binaries) > 0),
	}
	if err := s.coll.Maps["process_config_map"].Put(uint32(0), cfg); err != nil {
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

// replaceSet makes the keys of the set map m exactly keys. New keys are
// inserted before stale ones are removed, so a key present in both versions
// is never missing.
func replaceSet[K comparable](m *ebpf.Map, keys []K) error {
	want := make(map[K]bool, len(keys))
	one := uint8(1)
	for _, k := range keys {
		want[k] = true
		if err := m.Put(k, one); err != nil {
			return err
		}
	}
	var stale []K
	var k K
	var v uint8
	it := m.Iterate()
	for it.Next(&k, &v) {
		if !want[k] {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	for _, k := range stale {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	return nil
}

// Close detaches the programs and releases the maps.
func (s *ProcessSensor) Close() error {
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
func (s *ProcessSensor) SeedProcess(pid, ppid uint32, binary string, startKtime uint64) error {
	var e ProcessProcEntry
	e.ExecKtime = startKtime
	e.Ppid = ppid
	n := min(len(binary), len(e.Bin)-1)
	for i := 0; i < n; i++ {
		e.Bin[i] = int8(binary[i])
	}
	e.BinLen = uint32(n)
	err := s.Procs().Update(pid, e, ebpf.UpdateNoExist)
	if err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
		return fmt.Errorf("seed process %d: %w", pid, err)
	}
	return nil
}

// BinaryKey is the key of an executable path in the process sensor's maps.
func BinaryKey(path string) ProcessBinaryKey {
	var k ProcessBinaryKey
	n := min(len(path), len(k.Path)-1)
	for i := 0; i < n; i++ {
		k.Path[i] = int8(path[i])
	}
	return k
}

// FollowBinaries is the table of executables whose processes (and their
// descendants) get follow bits at exec.
func (s *ProcessSensor) FollowBinaries() *ebpf.Map { return s.coll.Maps["follow_binaries"] }

// UpdateFollowMasks walks the kernel's process table, parents before
// children, and lets update say which follow bits to add to and clear from
// each process, given the process's binary and its parent's new mask.
func (s *ProcessSensor) UpdateFollowMasks(update func(pid, ppid uint32, binary string, parentMask uint64) (add, clear uint64)) error {
	m := s.Procs()
	type proc struct {
		pid uint32
		e   ProcessProcEntry
	}
	var all []proc
	var pid uint32
	var e ProcessProcEntry
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
		bin := make([]byte, 0, p.e.BinLen)
		for k := uint32(0); k < p.e.BinLen && k < uint32(len(p.e.Bin)); k++ {
			bin = append(bin, byte(p.e.Bin[k]))
		}
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
