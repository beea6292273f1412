package sink

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// Reasons for lost lines, as they appear in metrics and lost_events records.
const (
	ReasonQueueFull = "queue_full"
	ReasonSinkError = "sink_error"
)

// Sink delivers lines to one destination.
type Sink interface {
	// Name identifies the sink in logs and metrics: "stdout", "file",
	// "webhook", "syslog".
	Name() string
	// Write delivers lines, count complete newline-terminated lines. It is
	// called from a single goroutine and may block for as long as the
	// destination takes (bounded by the sink's own timeouts).
	Write(ctx context.Context, lines []byte, count int)
	// Run does background work (time-based rotation, webhook delivery)
	// until ctx ends.
	Run(ctx context.Context) error
	// Close flushes what the sink holds within ctx and releases it.
	Close(ctx context.Context) error
}

// Hooks report what happens to lines inside a sink. Nil funcs are skipped.
type Hooks struct {
	// Lost reports lines that will never be delivered, with a reason.
	Lost func(reason string, lines int)
	// Delivered reports lines the destination accepted.
	Delivered func(lines int)
	// Latency observes one write or request to the destination.
	Latency func(time.Duration)
	// Failure reports one failed attempt to reach or write to the
	// destination, with a reason (see the Failure* constants). Lines it
	// carried may still be delivered by a retry; those that will not be
	// are reported through Lost.
	Failure func(reason string)
	// Retry reports one new attempt after a failure: a webhook batch sent
	// again, a syslog connection tried again.
	Retry func()
	// Log receives errors, at most one line per sink every few seconds.
	Log logrus.FieldLogger
}

func (h *Hooks) lost(reason string, n int) {
	if h.Lost != nil && n > 0 {
		h.Lost(reason, n)
	}
}

func (h *Hooks) delivered(n int) {
	if h.Delivered != nil && n > 0 {
		h.Delivered(n)
	}
}

// Reasons for failed attempts, as they appear in metrics.
const (
	// FailureNetwork: the connection could not be made or broke.
	FailureNetwork = "network"
	// FailureHTTP5xx, FailureHTTP429, FailureHTTP408: the webhook
	// receiver answered a status that is retried.
	FailureHTTP5xx = "http_5xx"
	FailureHTTP429 = "http_429"
	FailureHTTP408 = "http_408"
	// FailureHTTPRefused: the receiver answered another status; the
	// batch is dropped.
	FailureHTTPRefused = "http_refused"
	// FailureWrite: a syslog write failed.
	FailureWrite = "write"
	// FailureTooLarge: a syslog message does not fit in a UDP datagram.
	FailureTooLarge = "too_large"
)

func (h *Hooks) failure(reason string) {
	if h.Failure != nil {
		h.Failure(reason)
	}
}

func (h *Hooks) retry() {
	if h.Retry != nil {
		h.Retry()
	}
}

func (h *Hooks) latency(d time.Duration) {
	if h.Latency != nil {
		h.Latency(d)
	}
}

// errorLog logs a sink's errors without flooding: the first error, then at
// most one per interval with the number of errors in between.
type errorLog struct {
	mu         sync.Mutex
	log        logrus.FieldLogger
	sink       string
	interval   time.Duration
	last       time.Time
	suppressed int
	failing    bool
}

func newErrorLog(log logrus.FieldLogger, sink string) *errorLog {
	if log == nil {
		l := logrus.New()
		l.SetOutput(discard{})
		log = l
	}
	return &errorLog{log: log, sink: sink, interval: 10 * time.Second}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func (l *errorLog) error(err error, msg string, lines int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failing = true
	now := time.Now()
	if !l.last.IsZero() && now.Sub(l.last) < l.interval {
		l.suppressed++
		return
	}
	e := l.log.WithError(err).WithField("sink", l.sink)
	if lines > 0 {
		e = e.WithField("lines", lines)
	}
	if l.suppressed > 0 {
		e = e.WithField("suppressed_errors", l.suppressed)
	}
	e.Warn(msg)
	l.last, l.suppressed = now, 0
}

// recovered logs once when a failing sink delivers again.
func (l *errorLog) recovered() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.failing {
		return
	}
	l.failing = false
	l.log.WithField("sink", l.sink).Info("sink delivering again")
}

// completeLines returns the number of whole lines and their byte length at
// the start of p[:n].
func completeLines(p []byte, n int) (lines int, length int) {
	if n > len(p) {
		n = len(p)
	}
	head := p[:n]
	last := bytes.LastIndexByte(head, '\n')
	if last < 0 {
		return 0, 0
	}
	return bytes.Count(head[:last+1], []byte{'\n'}), last + 1
}
