package observer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/kprobes/abi"
)

// Handler processes one record. The record is only valid during the call.
type Handler func(rec []byte) error

// Stats count what the observer read.
type Stats struct {
	Records uint64
	// Unknown counts records whose opcode has no handler.
	Unknown uint64
	// Errors counts records a handler refused.
	Errors uint64
	// Batches counts the times the reader found the ring empty after
	// reading records; Sleeps the times it then went to sleep until a
	// program woke it; Empty the times a wait ended with the ring empty
	// (a linger's end): a sleeping reader adds to none of them.
	Batches, Sleeps, Empty uint64
}

// Linger is how long the reader keeps reading after a batch before it asks
// to be woken: records that arrive meanwhile cost the programs no wakeup,
// and wait at most this long (less when an eighth of the ring fills, which
// wakes the reader at once). An idle ring costs nothing: the reader sleeps
// until a program publishes a record.
//
// Each batch costs a fixed amount besides its records (the reader parked
// and woken by its timer, caches refilled after the other processes ran,
// every sink woken once): with 10 ms an exec storm made three times as
// many batches and cost the agent 31–39 µs per exec instead of 19–24
// (docs/benchmarks.md, "Exec storm: batches"), for 30 ms less wait.
const Linger = 40 * time.Millisecond

// Observer reads the shared ring buffer and dispatches its records by
// opcode.
type Observer struct {
	rd    *ring
	state *abi.ReaderState // memory shared with the programs
	unmap func()
	// stateMu guards the mapping against Lost while Run unmaps it;
	// finalLost is the count read just before.
	stateMu   sync.RWMutex
	finalLost uint64
	released  bool
	log       logrus.FieldLogger
	handlers  [256]Handler
	idle      func()

	records, unknown, errs, batches, sleeps, empty atomic.Uint64
}

// New opens a reader on the ring buffer events. state is the programs'
// ring_reader map (abi.ReaderState, memory-mapped): the reader sets its
// wakeup request there before it sleeps, and reads the loss counters
// without a system call. A nil state makes the reader poll every Linger.
func New(events, state *ebpf.Map, log logrus.FieldLogger) (*Observer, error) {
	rd, err := openRing(events)
	if err != nil {
		return nil, fmt.Errorf("open ring buffer reader: %w", err)
	}
	o := &Observer{rd: rd, log: log}
	if state != nil {
		mem, err := unix.Mmap(state.FD(), 0, os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			rd.close()
			return nil, fmt.Errorf("map the ring reader's state: %w", err)
		}
		o.state = (*abi.ReaderState)(unsafe.Pointer(unsafe.SliceData(mem)))
		o.unmap = func() { unix.Munmap(mem) }
	}
	return o, nil
}

// NewDispatcher returns an observer without a ring buffer: records reach its
// handlers through Dispatch only (replays, tests). Its Run fails.
func NewDispatcher(log logrus.FieldLogger) *Observer { return &Observer{log: log} }

// Route sends the records of one opcode to a sensor's decoder.
type Route struct {
	Op     uint8
	Decode Handler
}

// Handle registers h for records whose first byte is op. Register every
// handler before Run.
func (o *Observer) Handle(op uint8, h Handler) { o.handlers[op] = h }

// Route registers the decoders of routes. Register every route before Run.
func (o *Observer) Route(routes ...Route) {
	for _, r := range routes {
		o.handlers[r.Op] = r.Decode
	}
}

// OnIdle registers f, called on the reader's goroutine each time it has read
// every record there was (the end of a batch), before it waits. Register it
// before Run.
func (o *Observer) OnIdle(f func()) { o.idle = f }

// Stats returns the counters.
func (o *Observer) Stats() Stats {
	return Stats{Records: o.records.Load(), Unknown: o.unknown.Load(), Errors: o.errs.Load(),
		Batches: o.batches.Load(), Sleeps: o.sleeps.Load(), Empty: o.empty.Load()}
}

// Lost returns the programs' count of records they could not reserve in
// the ring, all opcodes together, read from the shared memory.
func (o *Observer) Lost() (uint64, error) {
	o.stateMu.RLock()
	defer o.stateMu.RUnlock()
	switch {
	case o.released:
		return o.finalLost, nil
	case o.state == nil:
		return 0, errors.New("observer: no shared reader state")
	}
	return o.lostLocked(), nil
}

func (o *Observer) lostLocked() uint64 {
	var n uint64
	for i := range o.state.Lost {
		n += atomic.LoadUint64(&o.state.Lost[i])
	}
	return n
}

// release unmaps the shared state, keeping the last loss count.
func (o *Observer) release() {
	o.wantWakeup(false)
	o.stateMu.Lock()
	defer o.stateMu.Unlock()
	o.finalLost = o.lostLocked()
	o.unmap()
	o.unmap, o.state, o.released = nil, nil, true
}

// Run reads and dispatches records until ctx ends, then reads what the
// ring still holds and releases the reader.
//
// While records come, the reader drains the ring, then lingers: it waits
// for Linger (programs do not wake it meanwhile) and drains again. After a
// linger that brought nothing it sets the wakeup request and sleeps until a
// program publishes a record (see wake_reader in kprobes/abi/lib/common.h).
// Waiting goes through the runtime's poller: a waiting reader holds no
// thread.
func (o *Observer) Run(ctx context.Context) error {
	if o.rd == nil {
		return errors.New("observer: no ring buffer to read (NewDispatcher)")
	}
	stop := context.AfterFunc(ctx, o.rd.interrupt)
	defer stop()
	defer o.rd.close()
	if o.unmap != nil {
		defer o.release()
	}
	deadline := time.Now().Add(Linger)
	for {
		n, err := o.rd.read(o.Dispatch)
		if err != nil {
			return err
		}
		if n > 0 {
			o.batches.Add(1)
			if o.idle != nil {
				o.idle()
			}
		}
		if ctx.Err() != nil {
			// Drained after the end: nothing the kernel wrote is left.
			return nil
		}
		if n > 0 || o.state == nil {
			// Records came in this round: linger for more.
			deadline = time.Now().Add(Linger)
		} else {
			// A linger brought nothing: ask to be woken, then look once
			// more, since a record published before the request was seen
			// wakes no one.
			o.wantWakeup(true)
			if o.rd.available() > 0 {
				o.wantWakeup(false)
				continue
			}
			o.sleeps.Add(1)
			deadline = time.Time{}
		}
		err = o.rd.wait(deadline)
		o.wantWakeup(false)
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			o.empty.Add(1)
		default:
			return fmt.Errorf("wait for the ring buffer: %w", err)
		}
	}
}

// wantWakeup sets or clears the wakeup request. The store is atomic (a
// full barrier on amd64 and arm64), ordered before the reader's last look
// at the ring.
func (o *Observer) wantWakeup(on bool) {
	if o.state == nil {
		return
	}
	var v uint32
	if on {
		v = 1
	}
	atomic.StoreUint32(&o.state.NeedWakeup, v)
}

// Dispatch hands one record to its handler.
func (o *Observer) Dispatch(b []byte) {
	o.records.Add(1)
	if len(b) == 0 {
		o.unknown.Add(1)
		return
	}
	h := o.handlers[b[0]]
	if h == nil {
		if o.unknown.Add(1) == 1 {
			o.log.WithField("opcode", b[0]).Warn("record with an unknown opcode (counted, further ones not logged)")
		}
		return
	}
	if err := h(b); err != nil {
		if n := o.errs.Add(1); n&(n-1) == 0 {
			o.log.WithError(err).WithField("opcode", b[0]).Warn("record refused (counted; logged at powers of two)")
		}
	}
}
