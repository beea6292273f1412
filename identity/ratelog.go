package identity

import (
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// Log field keys.
const (
	fieldSource     = "source"
	fieldOp         = "op"
	fieldCgroup     = "cgroup"
	fieldCgroupID   = "cgroup_id"
	fieldContainer  = "container_id"
	fieldSuppressed = "suppressed"
)

// logInterval is the least time between two log lines of one kind with the
// same message; changedInterval the least time between two with different
// messages.
const (
	logInterval     = 30 * time.Second
	changedInterval = time.Second
)

// rateLog logs at most one line per key and logInterval, or per
// changedInterval when the message changed; it says how many lines it held
// back.
type rateLog struct {
	mu   sync.Mutex
	now  func() time.Time
	last map[string]*rateEntry
}

type rateEntry struct {
	at         time.Time
	msg        string
	suppressed int
}

func newRateLog() *rateLog {
	return &rateLog{now: time.Now, last: map[string]*rateEntry{}}
}

// allow reports whether a line of key with msg may be logged now, and how
// many were held back before it.
func (r *rateLog) allow(key, msg string) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	e := r.last[key]
	if e == nil {
		if len(r.last) > 4096 {
			clear(r.last)
		}
		r.last[key] = &rateEntry{at: now, msg: msg}
		return true, 0
	}
	if since := now.Sub(e.at); since >= logInterval || (e.msg != msg && since >= changedInterval) {
		n := e.suppressed
		*e = rateEntry{at: now, msg: msg}
		return true, n
	}
	e.suppressed++
	return false, 0
}

// warn logs entry's message at warning level, rate-limited per key.
func (r *rateLog) warn(entry *logrus.Entry, key, msg string) {
	if ok, n := r.allow(key, msg); ok {
		if n > 0 {
			entry = entry.WithField(fieldSuppressed, n)
		}
		entry.Warn(msg)
	}
}

// info logs at info level, rate-limited per key.
func (r *rateLog) info(entry *logrus.Entry, key, msg string) {
	if ok, n := r.allow(key, msg); ok {
		if n > 0 {
			entry = entry.WithField(fieldSuppressed, n)
		}
		entry.Info(msg)
	}
}
