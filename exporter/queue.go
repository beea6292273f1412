package exporter

import (
	"context"
	"sync"
	"sync/atomic"
)

// chunkSize is the size at which a chunk of lines is closed. Lines are
// copied once into chunks; a sink writes a whole chunk per call.
const chunkSize = 64 << 10

// wakeBytes is how much a producer's batch may queue before the sink is
// woken ahead of the batch's end: a sink that keeps up is woken once per
// batch and writes its chunks one after another, never waiting for more
// than this.
const wakeBytes = 1 << 20

type chunk struct {
	data  []byte
	lines int
	// sealed marks the end of a producer's batch: the chunk being filled
	// may be taken once it is sealed (or full).
	sealed bool
}

// queue is one sink's bounded FIFO of chunks. The producer appends lines
// under the exporter's lock; the sink's goroutine takes whole chunks, the
// oldest first. The chunk being filled is taken once the producer has
// finished a batch (Export, or ExportBatched then Flush), so a sink that
// keeps up sees each batch at once, a chunk per write, and a slow one gets
// large writes. A sink asleep is woken by the end of a batch, or when its
// queue holds wakeBytes (or half its bound), not for each chunk filled.
type queue struct {
	name string

	mu      sync.Mutex
	ring    []*chunk // circular, len = capacity in chunks
	head, n int
	max     int64
	wakeAt  int64 // queued bytes that wake a sleeping sink before a batch ends
	free    []*chunk
	waiting bool
	closed  bool
	wake    chan struct{}

	bytes, lines atomic.Int64 // queued, for metrics
}

func newQueue(name string, maxBytes int64) *queue {
	slots := int(maxBytes/chunkSize) + 2
	return &queue{name: name, ring: make([]*chunk, slots), max: maxBytes, wakeAt: min(wakeBytes, maxBytes/2),
		wake: make(chan struct{}, 1)}
}

// push copies line into the queue. It returns false when the queue is full
// or closed; the line is then lost for this sink. With wake false a waiting
// sink is left asleep until wakeup, unless the queue holds wakeAt bytes.
func (q *queue) push(line []byte, wake bool) bool {
	q.mu.Lock()
	if q.closed || q.bytes.Load()+int64(len(line)) > q.max {
		q.mu.Unlock()
		return false
	}
	var c *chunk
	if q.n > 0 {
		c = q.ring[(q.head+q.n-1)%len(q.ring)]
		if len(c.data) >= chunkSize {
			c = nil
		}
	}
	if c == nil {
		if q.n == len(q.ring) {
			q.mu.Unlock()
			return false
		}
		if k := len(q.free); k > 0 {
			c, q.free = q.free[k-1], q.free[:k-1]
		} else {
			c = &chunk{data: make([]byte, 0, chunkSize+4096)}
		}
		q.ring[(q.head+q.n)%len(q.ring)] = c
		q.n++
	}
	c.data = append(c.data, line...)
	c.lines++
	if wake {
		c.sealed = true
	}
	q.bytes.Add(int64(len(line)))
	q.lines.Add(1)
	wake = q.waiting && (wake || q.bytes.Load() >= q.wakeAt)
	if wake {
		q.waiting = false
	}
	q.mu.Unlock()
	if wake {
		q.signal()
	}
	return true
}

// wakeup wakes a waiting sink if lines are queued.
func (q *queue) wakeup() {
	q.mu.Lock()
	if q.n > 0 {
		q.ring[(q.head+q.n-1)%len(q.ring)].sealed = true
	}
	wake := q.waiting && q.n > 0
	if wake {
		q.waiting = false
	}
	q.mu.Unlock()
	if wake {
		q.signal()
	}
}

func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pop returns the oldest chunk, waiting until there is one. After close it
// returns what is left, then nil. It returns nil when ctx ends.
func (q *queue) pop(ctx context.Context) *chunk {
	for {
		q.mu.Lock()
		if q.n > 1 || (q.n == 1 && (q.closed || q.ring[q.head].sealed || len(q.ring[q.head].data) >= chunkSize)) {
			c := q.ring[q.head]
			q.ring[q.head] = nil
			q.head = (q.head + 1) % len(q.ring)
			q.n--
			q.bytes.Add(-int64(len(c.data)))
			q.lines.Add(-int64(c.lines))
			q.mu.Unlock()
			return c
		}
		if q.closed {
			q.mu.Unlock()
			return nil
		}
		q.waiting = true
		q.mu.Unlock()
		select {
		case <-q.wake:
		case <-ctx.Done():
			return nil
		}
	}
}

// release gives a written chunk back for reuse.
func (q *queue) release(c *chunk) {
	c.data, c.lines, c.sealed = c.data[:0], 0, false
	if cap(c.data) > 4*chunkSize {
		return // grown by a huge line: let it go
	}
	q.mu.Lock()
	if len(q.free) < len(q.ring) { // never more than the queue may hold
		q.free = append(q.free, c)
	}
	q.mu.Unlock()
}

// close makes pop return nil once the queue is empty and push fail.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}
