package hubble

import (
	"context"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
)

// DefaultCapacity is the number of flows a Store keeps by default.
const DefaultCapacity = 8192

// Store keeps the latest flows in a ring. Put never waits: a reader that
// falls behind loses the oldest flows and learns how many from Read. Flows
// are shared with every reader and must not be modified once stored.
type Store struct {
	mu   sync.Mutex
	buf  []*flowpb.Flow
	mask uint64
	next uint64        // sequence number of the next flow
	wake chan struct{} // closed by the next Put; nil when nobody waits

	// upstream counts flows lost before they reached the store (a full
	// subscription queue); readers report what they saw change.
	upstream atomic.Uint64
	start    time.Time
	rate     rateMeter
}

// NewStore returns a store for capacity flows, rounded up to a power of
// two (at least 16).
func NewStore(capacity int) (*Store, error) {
	if capacity < 1 || capacity > 1<<24 {
		return nil, fmt.Errorf("flow buffer of %d flows is out of range (1 to %d)", capacity, 1<<24)
	}
	n := uint64(1) << bits.Len64(uint64(max(capacity, 16)-1))
	return &Store{buf: make([]*flowpb.Flow, n), mask: n - 1, start: time.Now()}, nil
}

// Put stores f.
func (s *Store) Put(f *flowpb.Flow) {
	s.mu.Lock()
	s.buf[s.next&s.mask] = f
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

// Read appends to dst the flows from sequence number from on (at most max,
// 0: no limit) and returns them, the sequence number to read next, and how
// many flows from..oldest were overwritten before they could be read.
func (s *Store) Read(dst []*flowpb.Flow, from uint64, max int) (out []*flowpb.Flow, next, lost uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.oldest(); from < old {
		lost, from = old-from, old
	}
	end := s.next
	if max > 0 && end-from > uint64(max) {
		end = from + uint64(max)
	}
	for i := from; i < end; i++ {
		dst = append(dst, s.buf[i&s.mask])
	}
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
