package hubble

import (
	"context"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"

	"github.com/vigilsec/vigil/event"
)

// DefaultCapacity is the number of flows a Store keeps by default.
const DefaultCapacity = 8192

// Store keeps the latest flows in a ring. Put never waits: a reader that
// falls behind loses the oldest flows and learns how many from Read.
//
// The agent's store holds Vigil's own flow events (PutEvent) and builds
// Hubble's Flow message of one only when a reader asks for it (Read), so
// that a flow nobody reads costs an append. The relay's store holds the
// Hubble flows it received (Put). Events and flows are shared with every
// reader and must not be modified once stored.
type Store struct {
	mu   sync.Mutex
	buf  []slot
	mask uint64
	next uint64        // sequence number of the next flow
	wake chan struct{} // closed by the next Put; nil when nobody waits
	conv *Converter    // builds the Hubble flows of events; nil: Put only

	// upstream counts flows lost before they reached the store (a full
	// subscription queue); readers report what they saw change.
	upstream atomic.Uint64
	start    time.Time
	rate     rateMeter
}

// slot is one flow of the ring: an event, its Hubble flow once a reader
// asked for it, or a Hubble flow alone.
type slot struct {
	ev   *event.Event
	flow *flowpb.Flow
}

// Record is one stored flow as ReadRecords returns it: Vigil's event when
// the flow is the agent's own, and its Hubble flow, built on demand.
type Record struct {
	ev   *event.Event
	flow *flowpb.Flow
	conv *Converter
}

// FlowRecord is the record of a Hubble flow (as the relay stores them).
func FlowRecord(f *flowpb.Flow) Record { return Record{flow: f} }

// Event returns the flow event the record was stored from, or nil for a
// Hubble flow from another node.
func (r Record) Event() *event.Event { return r.ev }

// Flow returns the record's Hubble flow, building it from the event when no
// reader has yet.
func (r Record) Flow() *flowpb.Flow {
	if r.flow == nil && r.ev != nil {
		return r.conv.Convert(r.ev)
	}
	return r.flow
}

// Converter returns the converter that builds the record's Hubble flow
// (nil for a Hubble flow from another node): its node name and labels are
// the flow's.
func (r Record) Converter() *Converter { return r.conv }

// IsZero reports whether r holds no flow.
func (r Record) IsZero() bool { return r.ev == nil && r.flow == nil }

// NewStore returns a store for capacity Hubble flows, rounded up to a power
// of two (at least 16).
func NewStore(capacity int) (*Store, error) {
	if capacity < 1 || capacity > 1<<24 {
		return nil, fmt.Errorf("flow buffer of %d flows is out of range (1 to %d)", capacity, 1<<24)
	}
	n := uint64(1) << bits.Len64(uint64(max(capacity, 16)-1))
	return &Store{buf: make([]slot, n), mask: n - 1, start: time.Now()}, nil
}

// NewEventStore returns a store for capacity flows that also takes flow
// events (PutEvent) and converts them with conv when they are read.
func NewEventStore(capacity int, conv *Converter) (*Store, error) {
	s, err := NewStore(capacity)
	if err != nil {
		return nil, err
	}
	s.conv = conv
	return s, nil
}

// Put stores f.
func (s *Store) Put(f *flowpb.Flow) { s.put(slot{flow: f}) }

// PutEvent stores a flow event, which must not be modified afterwards.
// Events of other types are ignored. It panics on a store made without a
// converter (NewStore).
func (s *Store) PutEvent(ev *event.Event) {
	if s.conv == nil {
		panic("hubble: PutEvent on a store without a converter")
	}
	if ev.Type != event.TypeFlow || ev.Flow == nil {
		return
	}
	s.put(slot{ev: ev})
}

func (s *Store) put(sl slot) {
	s.mu.Lock()
	s.buf[s.next&s.mask] = sl
	s.next++
	w := s.wake
	s.wake = nil
	s.rate.add(time.Now())
	s.mu.Unlock()
	if w != nil {
		close(w)
	}
}

// AddLost counts n flows lost before they reached the store.
func (s *Store) AddLost(n uint64) { s.upstream.Add(n) }

// Lost returns the number of flows lost before they reached the store.
func (s *Store) Lost() uint64 { return s.upstream.Load() }

// Capacity is the number of flows the store keeps.
func (s *Store) Capacity() int { return len(s.buf) }

// Stats describe the store for ServerStatus.
type Stats struct {
	Held, Capacity int
	Seen           uint64
	Uptime         time.Duration
	// Rate is the number of flows per second over the last minute.
	Rate float64
}

// Stats returns the store's counts.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Held: int(min(s.next, uint64(len(s.buf)))), Capacity: len(s.buf), Seen: s.next,
		Uptime: time.Since(s.start), Rate: s.rate.perSecond(time.Now())}
}

// Oldest returns the sequence number of the oldest flow held and the one
// the next flow will get.
func (s *Store) Oldest() (oldest, next uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.oldest(), s.next
}

func (s *Store) oldest() uint64 {
	if s.next > uint64(len(s.buf)) {
		return s.next - uint64(len(s.buf))
	}
	return 0
}

// span clips from..from+max to what the store holds: the first sequence
// number to read, the one after the last, and how many were overwritten
// before from could be read. Called with s.mu held.
func (s *Store) span(from uint64, max int) (first, end, lost uint64) {
	if old := s.oldest(); from < old {
		lost, from = old-from, old
	}
	end = s.next
	if max > 0 && end-from > uint64(max) {
		end = from + uint64(max)
	}
	return from, end, lost
}

// ReadRecords appends to dst the records from sequence number from on (at
// most max, 0: no limit) and returns them, the sequence number to read
// next, and how many records from..oldest were overwritten before they
// could be read. It builds no Hubble flow.
func (s *Store) ReadRecords(dst []Record, from uint64, max int) (out []Record, next, lost uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	from, end, lost := s.span(from, max)
	for i := from; i < end; i++ {
		sl := &s.buf[i&s.mask]
		dst = append(dst, Record{ev: sl.ev, flow: sl.flow, conv: s.conv})
	}
	return dst, end, lost
}

// Read appends to dst the Hubble flows from sequence number from on (at
// most max, 0: no limit) and returns them, the sequence number to read
// next, and how many flows from..oldest were overwritten before they could
// be read. The flows of events are built here, outside the store's lock,
// once: the next reader of the same flow gets the same message.
func (s *Store) Read(dst []*flowpb.Flow, from uint64, max int) (out []*flowpb.Flow, next, lost uint64) {
	s.mu.Lock()
	from, end, lost := s.span(from, max)
	base := len(dst)
	var todo []int // indexes into dst of flows to build
	var evs []*event.Event
	for i := from; i < end; i++ {
		sl := &s.buf[i&s.mask]
		if sl.flow == nil && sl.ev != nil {
			todo = append(todo, len(dst))
			evs = append(evs, sl.ev)
		}
		dst = append(dst, sl.flow)
	}
	s.mu.Unlock()
	if len(todo) == 0 {
		return dst, end, lost
	}
	for j, i := range todo {
		dst[i] = s.conv.Convert(evs[j])
	}
	// Keep what was built for the next reader, where the ring still holds
	// the same event.
	s.mu.Lock()
	oldest := s.oldest()
	for j, i := range todo {
		seq := from + uint64(i-base)
		if sl := &s.buf[seq&s.mask]; seq >= oldest && sl.ev == evs[j] && sl.flow == nil {
			sl.flow = dst[i]
		}
	}
	s.mu.Unlock()
	return dst, end, lost
}

// Wait returns when a flow with sequence number seq or later is stored, or
// with ctx's error.
func (s *Store) Wait(ctx context.Context, seq uint64) error {
	s.mu.Lock()
	if s.next > seq {
		s.mu.Unlock()
		return nil
	}
	if s.wake == nil {
		s.wake = make(chan struct{})
	}
	w := s.wake
	s.mu.Unlock()
	select {
	case <-w:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// rateMeter counts events per second in a ring of 60 one-second slots.
type rateMeter struct {
	slots [60]uint32
	sec   int64 // the second of the newest slot
}

func (r *rateMeter) add(now time.Time) {
	r.advance(now.Unix())
	r.slots[r.sec%60]++
}

func (r *rateMeter) advance(sec int64) {
	if sec <= r.sec {
		return
	}
	for s := r.sec + 1; s <= sec && s <= r.sec+60; s++ {
		r.slots[s%60] = 0
	}
	r.sec = sec
}

func (r *rateMeter) perSecond(now time.Time) float64 {
	r.advance(now.Unix())
	var n uint64
	for _, v := range r.slots {
		n += uint64(v)
	}
	return float64(n) / 60
}
