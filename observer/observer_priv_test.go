package observer

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/rlimit"
	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/internal/kerneltest"
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
	o, err := New(p.ring, log)
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{ch: make(chan struct{}, 1)}
	o.Handle(op, r.handle)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// The reader is idle now: nothing will wake it but its own timer.
	time.Sleep(3 * PollInterval)
	start := time.Now()
	p.write(t, 1)
	select {
	case <-r.ch:
	case <-time.After(2 * time.Second):
		t.Fatalf("record written without a wakeup not read after 2s (poll interval %v)", PollInterval)
	}
	if d := time.Since(start); d > 20*PollInterval {
		t.Errorf("record read after %v, want within a few poll intervals of %v", d, PollInterval)
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
	o, err := New(p.ring, log)
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
