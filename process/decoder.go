package process

import (
	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/kprobes/abi"
	"github.com/vigilsec/vigil/observer"
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

// Exec handles an exec record.
func (d *Decoder) Exec(rec []byte) error {
	r, data, err := abi.Exec(rec)
	if err != nil {
		d.Errors++
		return err
	}
	proc, parent := d.cache.Exec(r, data)
	d.ev = event.Event{Type: event.TypeProcessExec, Time: d.cache.cfg.Clock.Wall(r.Hdr.Ktime), Process: proc, Parent: parent}
	d.sink.Export(&d.ev)
	return nil
}

// Fork handles a fork record. Forks update the cache and produce no event.
func (d *Decoder) Fork(rec []byte) error {
	r, err := abi.Fork(rec)
	if err != nil {
		d.Errors++
		return err
	}
	d.cache.Fork(r)
	return nil
}

// Exit handles an exit record.
func (d *Decoder) Exit(rec []byte) error {
	r, err := abi.Exit(rec)
	if err != nil {
		d.Errors++
		return err
	}
	proc, parent, exit := d.cache.Exit(r)
	d.exit = exit
	d.ev = event.Event{Type: event.TypeProcessExit, Time: d.cache.cfg.Clock.Wall(r.Hdr.Ktime), Process: proc, Parent: parent, Exit: &d.exit}
	d.sink.Export(&d.ev)
	return nil
}

// Routes are the opcodes this decoder reads.
func (d *Decoder) Routes() []observer.Route {
	return []observer.Route{{Op: abi.OpExec, Decode: d.Exec}, {Op: abi.OpFork, Decode: d.Fork}, {Op: abi.OpExit, Decode: d.Exit}}
}
