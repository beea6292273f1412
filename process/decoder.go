package process

import (
	"fmt"
	"unsafe"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/kprobes"
)

// Sink receives events. It must not keep the event after returning.
type Sink interface {
	Export(ev *event.Event)
}

// Decoder turns the kernel's exec, fork and exit records into cache updates
// and process_exec / process_exit events. It reuses one event value, so it
// allocates nothing per record beyond the cache entry of a new process. A
// Decoder is used by one goroutine.
type Decoder struct {
	cache *Cache
	sink  Sink
	ev    event.Event
	exit  event.Exit
	// Errors counts records too short for their opcode.
	Errors uint64
}

// NewDecoder returns a decoder that updates cache and sends events to sink.
func NewDecoder(cache *Cache, sink Sink) *Decoder {
	return &Decoder{cache: cache, sink: sink}
}

var (
	execSize = int(unsafe.Sizeof(kprobes.ProcessExecEvent{}))
	exitSize = int(unsafe.Sizeof(kprobes.ProcessExitEvent{}))
	forkSize = int(unsafe.Sizeof(kprobes.ProcessForkEvent{}))
)

// ErrShortRecord reports a record shorter than its opcode's layout.
type ErrShortRecord struct {
	Op        uint8
	Len, Want int
}

func (e *ErrShortRecord) Error() string {
	return fmt.Sprintf("record of opcode %d is %d bytes, want at least %d", e.Op, e.Len, e.Want)
}

// Exec handles an exec record.
func (d *Decoder) Exec(rec []byte) error {
	if len(rec) < execSize {
		d.Errors++
		return &ErrShortRecord{kprobes.OpExec, len(rec), execSize}
	}
	r := (*kprobes.ProcessExecEvent)(unsafe.Pointer(&rec[0]))
	proc, parent := d.cache.Exec(r, rec[execSize:])
	d.ev = event.Event{Type: event.TypeProcessExec, Time: d.cache.cfg.Clock.Wall(r.Hdr.Ktime), Process: proc, Parent: parent}
	d.sink.Export(&d.ev)
	return nil
}

// Fork handles a fork record. Forks update the cache and produce no event.
func (d *Decoder) Fork(rec []byte) error {
	if len(rec) < forkSize {
		d.Errors++
		return &ErrShortRecord{kprobes.OpFork, len(rec), forkSize}
	}
	d.cache.Fork((*kprobes.ProcessForkEvent)(unsafe.Pointer(&rec[0])))
	return nil
}

// Exit handles an exit record.
func (d *Decoder) Exit(rec []byte) error {
	if len(rec) < exitSize {
		d.Errors++
		return &ErrShortRecord{kprobes.OpExit, len(rec), exitSize}
	}
	r := (*kprobes.ProcessExitEvent)(unsafe.Pointer(&rec[0]))
	proc, parent, exit := d.cache.Exit(r)
	d.exit = exit
	d.ev = event.Event{Type: event.TypeProcessExit, Time: d.cache.cfg.Clock.Wall(r.Hdr.Ktime), Process: proc, Parent: parent, Exit: &d.exit}
	d.sink.Export(&d.ev)
	return nil
}
