package observer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/sirupsen/logrus"
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
}

// Observer dispatches ring buffer records by opcode.
type Observer struct {
	rd       *ringbuf.Reader
	log      logrus.FieldLogger
	handlers [256]Handler

	records, unknown, errs atomic.Uint64
}

// New opens a reader on the ring buffer map events.
func New(events *ebpf.Map, log logrus.FieldLogger) (*Observer, error) {
	rd, err := ringbuf.NewReader(events)
	if err != nil {
		return nil, fmt.Errorf("open ring buffer reader: %w", err)
	}
	return &Observer{rd: rd, log: log}, nil
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

// Stats returns the counters.
func (o *Observer) Stats() Stats {
	return Stats{Records: o.records.Load(), Unknown: o.unknown.Load(), Errors: o.errs.Load()}
}

// PollInterval bounds how long a record waits in the ring buffer. The
// programs wake the reader only once a backlog builds up (see
// kprobes/abi/lib/common.h): a wakeup per record costs the traced process an
// interrupt, a timer costs the agent a few hundred idle wakeups a second
// at most.
const PollInterval = 10 * time.Millisecond

// Run reads and dispatches records until ctx ends, then reads what the
// ring still holds and closes the reader.
func (o *Observer) Run(ctx context.Context) error {
	if o.rd == nil {
		return errors.New("observer: no ring buffer to read (NewDispatcher)")
	}
	// Flush wakes a waiting reader at once and makes it return ErrFlushed
	// once the ring is empty.
	stop := context.AfterFunc(ctx, func() { o.rd.Flush() })
	defer stop()
	defer o.rd.Close()

	var rec ringbuf.Record
	o.rd.SetDeadline(time.Now().Add(PollInterval))
	for {
		err := o.rd.ReadInto(&rec)
		switch {
		case err == nil:
			o.Dispatch(rec.RawSample)
			continue
		case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, ringbuf.ErrFlushed):
			// The ring is empty.
			if ctx.Err() != nil {
				return nil
			}
			o.rd.SetDeadline(time.Now().Add(PollInterval))
		case errors.Is(err, ringbuf.ErrClosed), errors.Is(err, os.ErrClosed):
			return nil
		default:
			return fmt.Errorf("read ring buffer: %w", err)
		}
	}
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
