package observer

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/rlimit"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/kerneltest"
	"github.com/vigilsec/vigil/kprobes/abi"
)

// producer is a ring buffer and a program that writes one 8-byte record
// (opcode op) into it without waking the reader, as Vigil's programs do
// while the reader keeps up.
type producer struct {
	ring *ebpf.Map
	prog *ebpf.Program
}

func newProducer(t *testing.T, op uint8) *producer {
	t.Helper()
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
	ring, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ring.Close() })
	const bpfRBNoWakeup = 1
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:    ebpf.SocketFilter,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R1, int32(op)),
			asm.StoreMem(asm.RFP, -8, asm.R1, asm.DWord),
			asm.LoadMapPtr(asm.R1, ring.FD()),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -8),
			asm.Mov.Imm(asm.R3, 8),
			asm.Mov.Imm(asm.R4, bpfRBNoWakeup),
			asm.FnRingbufOutput.Call(),
			asm.Mov.Imm(asm.R0, 0),
			asm.Return(),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close() })
	return &producer{ring: ring, prog: prog}
}

func (p *producer) write(t *testing.T, n int) {
	t.Helper()
	for range n {
		if _, err := p.prog.Run(&ebpf.RunOptions{Data: make([]byte, 14)}); err != nil {
			t.Fatal(err)
		}
	}
}

type recorder struct {
	mu sync.Mutex
	n  int
	ch chan struct{}
}

func (r *recorder) handle(rec []byte) error {
	r.mu.Lock()
	r.n++
	r.mu.Unlock()
	select {
	case r.ch <- struct{}{}:
	default:
	}
	return nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// Records written without a wakeup reach their handler within a few poll
// intervals.
func TestPrivRecordsWithoutWakeup(t *testing.T) {
	kerneltest.Require(t)
	const op = 0x42
	p := newProducer(t, op)
	log := logrus.New()
	log.SetOutput(io.Discard)
	o, err := New(p.ring, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{ch: make(chan struct{}, 1)}
	o.Handle(op, r.handle)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// The reader is idle now: without the shared state, nothing will wake
	// it but its own timer.
	time.Sleep(3 * Linger)
	start := time.Now()
	p.write(t, 1)
	select {
	case <-r.ch:
	case <-time.After(2 * time.Second):
		t.Fatalf("record written without a wakeup not read after 2s (linger %v)", Linger)
	}
	if d := time.Since(start); d > 20*Linger {
		t.Errorf("record read after %v, want within a few lingers of %v", d, Linger)
	}
	if got := o.Stats().Records; got != 1 {
		t.Errorf("Stats().Records = %d, want 1", got)
	}
}

// Records still in the ring when the context ends are dispatched before Run
// returns: stopping the agent does not drop what the kernel already wrote.
func TestPrivRunDrainsOnCancel(t *testing.T) {
	kerneltest.Require(t)
	const op = 0x43
	p := newProducer(t, op)
	log := logrus.New()
	log.SetOutput(io.Discard)
	o, err := New(p.ring, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{ch: make(chan struct{}, 1)}
	o.Handle(op, r.handle)
	ctx, cancel := context.WithCancel(context.Background())
	// Written before Run starts and cancelled before it can poll: only
	// the drain at the end can read them.
	p.write(t, 500)
	cancel()
	if err := o.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if got := r.count(); got != 500 {
		t.Errorf("%d records dispatched after cancel, want the 500 written", got)
	}
}

// wakingProducer writes like Vigil's programs do (lib/common.h): a record
// without a wakeup, then, when the reader asked to be woken in the shared
// state, a wakeup carried by a discarded record.
func wakingProducer(t *testing.T, op uint8) (*producer, *ebpf.Map) {
	t.Helper()
	p := newProducer(t, op)
	state, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, MaxEntries: 1,
		ValueSize: uint32(unsafe.Sizeof(abi.ReaderState{})), Flags: unix.BPF_F_MMAPABLE})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { state.Close() })
	const noWakeup, forceWakeup = 1, 2
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:    ebpf.SocketFilter,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R1, int32(op)),
			asm.StoreMem(asm.RFP, -8, asm.R1, asm.DWord),
			asm.LoadMapPtr(asm.R1, p.ring.FD()),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -8),
			asm.Mov.Imm(asm.R3, 8),
			asm.Mov.Imm(asm.R4, noWakeup),
			asm.FnRingbufOutput.Call(),
			asm.StoreImm(asm.RFP, -12, 0, asm.Word),
			asm.LoadMapPtr(asm.R1, state.FD()),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -12),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "out"),
			asm.LoadMem(asm.R1, asm.R0, 0, asm.Word),
			asm.JEq.Imm(asm.R1, 0, "out"),
			asm.StoreImm(asm.R0, 0, 0, asm.Word),
			asm.LoadMapPtr(asm.R1, p.ring.FD()),
			asm.Mov.Imm(asm.R2, 8),
			asm.Mov.Imm(asm.R3, 0),
			asm.FnRingbufReserve.Call(),
			asm.JEq.Imm(asm.R0, 0, "out"),
			asm.Mov.Reg(asm.R1, asm.R0),
			asm.Mov.Imm(asm.R2, forceWakeup),
			asm.FnRingbufDiscard.Call(),
			asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
			asm.Return(),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close() })
	p.prog = prog
	return p, state
}

// An idle reader sleeps without polling, and the first record a program
// publishes wakes it at once.
func TestPrivIdleReaderSleepsAndIsWoken(t *testing.T) {
	kerneltest.Require(t)
	const op = 0x44
	p, state := wakingProducer(t, op)
	log := logrus.New()
	log.SetOutput(io.Discard)
	o, err := New(p.ring, state, log)
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{ch: make(chan struct{}, 16)}
	o.Handle(op, r.handle)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	defer func() { cancel(); <-done }()

	waitSleeps := func(n uint64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for o.Stats().Sleeps < n {
			if time.Now().After(deadline) {
				t.Fatalf("the reader did not go to sleep (%+v)", o.Stats())
			}
			time.Sleep(time.Millisecond)
		}
	}
	for round := uint64(1); round <= 3; round++ {
		waitSleeps(round)
		// Asleep, it does nothing at all: no timer, no batch.
		before := o.Stats()
		time.Sleep(20 * Linger)
		if after := o.Stats(); after != before {
			t.Fatalf("an idle reader was busy: %+v, then %+v", before, after)
		}
		// It has no timer that could read the record for it: only the
		// wakeup the program forces makes it read.
		p.write(t, 1)
		select {
		case <-r.ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: a record published to a sleeping reader was not read within 5s", round)
		}
	}
	if got := r.count(); got != 3 {
		t.Errorf("%d records read, want 3 (the wakeup records are discarded)", got)
	}
}
