package exporter

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/exporter/encode"
	"github.com/vigilsec/vigil/exporter/filter"
	"github.com/vigilsec/vigil/exporter/sink"
	"github.com/vigilsec/vigil/exporter/spool"
)

// Log field keys.
const (
	logFieldSink   = "sink"
	logFieldReason = "reason"
	logFieldFormat = "format"
)

// Exporter turns events into JSON lines and delivers them to its sinks.
// Export is synchronous and never blocks on a sink: each sink has its own
// bounded queue and goroutine (started by Run).
type Exporter struct {
	cfg      Config
	log      logrus.FieldLogger
	nodeName string
	metrics  *exporterMetrics
	losses   *losses

	mu       sync.Mutex // serialises Export: encoder, filters, limiter, subscribers
	enc      *encode.Encoder
	buf, alt []byte
	filters  *filter.Set
	mask     *filter.FieldMask
	limiter  *rateLimiter
	gate     *formatGate
	subs     []*Subscription
	evsubs   []*EventSubscription
	redact   func(string) string

	sinks   []sink.Sink
	queues  []*queue
	running atomic.Bool
	now     func() time.Time
}

// New checks cfg, opens the sinks (creating the export file, the spool
// directory) and registers the metrics on reg (nil: no metrics). Errors
// name the flag at fault.
func New(cfg Config, log logrus.FieldLogger, reg prometheus.Registerer) (*Exporter, error) {
	c, err := cfg.compile()
	if err != nil {
		return nil, err
	}
	if log == nil {
		l := logrus.New()
		l.SetOutput(discard{})
		log = l
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	e := &Exporter{
		cfg:      cfg,
		log:      log,
		nodeName: cfg.NodeName,
		metrics:  m,
		losses:   newLosses(m.lost),
		filters:  c.filters,
		mask:     c.mask,
		limiter:  newRateLimiter(cfg.RateLimit),
		buf:      make([]byte, 0, 16<<10),
		now:      time.Now,
	}
	if e.nodeName == "" {
		e.nodeName, _ = os.Hostname()
	}
	e.gate = newFormatGate(c.format, m)
	if note := e.gate.note(); note != "" {
		log.WithField(logFieldFormat, c.format.String()).Info(note)
	}
	opts := &encode.Options{ArgumentsList: cfg.ArgumentsArray, Format: c.format}
	if c.redact.Len() > 0 {
		opts.Redact = c.redact.Redact
		e.redact = c.redact.Redact
	}
	e.enc = encode.NewEncoder(opts)
	if err := e.openSinks(c); err != nil {
		e.closeSinks()
		m.unregister()
		return nil, err
	}
	if err := m.queueGauges(e.queues); err != nil {
		e.closeSinks()
		m.unregister()
		return nil, err
	}
	return e, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func (e *Exporter) hooks(name string) sink.Hooks {
	delivered := e.metrics.delivered.WithLabelValues(name)
	latency := e.metrics.latency.WithLabelValues(name)
	retries := e.metrics.retries.WithLabelValues(name)
	return sink.Hooks{
		Lost:      func(reason string, n int) { e.losses.add(reason, name, uint64(n)) },
		Delivered: func(n int) { delivered.Add(float64(n)) },
		Latency:   func(d time.Duration) { latency.Observe(d.Seconds()) },
		Failure:   func(reason string) { e.metrics.failures.WithLabelValues(name, reason).Inc() },
		Retry:     retries.Inc,
		Log:       e.log,
	}
}

func (e *Exporter) openSinks(c *compiled) error {
	cfg := &e.cfg
	if cfg.Stdout {
		e.addSink(sink.NewWriter("stdout", os.Stdout, e.hooks("stdout")))
	}
	if cfg.File != "" {
		s, err := sink.NewFile(sink.FileOptions{
			Path: cfg.File, MaxSizeMB: cfg.FileMaxSizeMB, MaxBackups: cfg.FileMaxBackups,
			RotationInterval: time.Duration(cfg.FileRotationInterval), Compress: cfg.FileCompress,
			Perm: fs.FileMode(cfg.FilePerm),
		}, e.hooks("file"))
		if err != nil {
			return fmt.Errorf("file sink: %w", err)
		}
		e.addSink(s)
	}
	if cfg.Webhook != "" {
		files := sink.TLSFiles{CAFile: cfg.WebhookCAFile, CertFile: cfg.WebhookCertFile, KeyFile: cfg.WebhookKeyFile,
			InsecureSkipVerify: cfg.WebhookInsecureSkipVerify}
		tlsCfg, err := files.Config()
		if err != nil {
			return fmt.Errorf("webhook TLS: %w", err)
		}
		s, err := sink.NewWebhook(sink.WebhookOptions{
			URL: cfg.Webhook, Headers: c.headers, Gzip: cfg.WebhookGzip,
			BatchBytes: cfg.WebhookBatchMaxBytes, BatchInterval: time.Duration(cfg.WebhookBatchInterval),
			Timeout: time.Duration(cfg.WebhookTimeout), MaxRetryInterval: time.Duration(cfg.WebhookRetryMaxInterval),
			TLS: tlsCfg, SpoolDir: cfg.WebhookSpoolDir,
			Spool: spool.Options{MemoryBytes: int64(cfg.WebhookMemoryMB) << 20, DiskBytes: int64(cfg.WebhookSpoolMaxMB) << 20},
		}, e.hooks("webhook"))
		if err != nil {
			return fmt.Errorf("webhook sink: %w", err)
		}
		e.addSink(s)
		if err := e.metrics.spoolGauges(s); err != nil {
			return err
		}
	}
	if cfg.Syslog != "" {
		opts := sink.SyslogOptions{Network: c.syslogNetwork, Address: c.syslogAddress, Facility: c.facility, Hostname: e.nodeName}
		if c.syslogNetwork == "tls" {
			t, err := sink.TLSFiles{CAFile: cfg.SyslogCAFile, CertFile: cfg.SyslogCertFile, KeyFile: cfg.SyslogKeyFile,
				InsecureSkipVerify: cfg.SyslogInsecureSkipVerify}.Config()
			if err != nil {
				return fmt.Errorf("syslog TLS: %w", err)
			}
			opts.TLS = t
		}
		s, err := sink.NewSyslog(opts, e.hooks("syslog"))
		if err != nil {
			return fmt.Errorf("syslog sink %s: %w", cfg.Syslog, err)
		}
		e.addSink(s)
		if err := e.metrics.syslogGauge(s.Connected); err != nil {
			return err
		}
	}
	return nil
}

func (e *Exporter) addSink(s sink.Sink) {
	e.sinks = append(e.sinks, s)
	e.queues = append(e.queues, newQueue(s.Name(), int64(e.cfg.QueueMB)<<20))
}

func (e *Exporter) closeSinks() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, s := range e.sinks {
		s.Close(ctx)
	}
}

// Export encodes ev and hands the line to every sink's queue and every
// subscriber. It does not keep ev. Safe for concurrent use; events are
// written in the order Export is called.
func (e *Exporter) Export(ev *event.Event) { e.export(ev, true) }

// ExportBatched exports ev like Export but leaves the sinks asleep until
// Flush (or until a chunk of lines is full): a producer that hands over
// events in batches wakes each sink once per batch, not once per event.
func (e *Exporter) ExportBatched(ev *event.Event) { e.export(ev, false) }

// Flush wakes the sinks that have lines queued by ExportBatched.
func (e *Exporter) Flush() {
	for _, q := range e.queues {
		q.wakeup()
	}
}

func (e *Exporter) export(ev *event.Event, wake bool) {
	if ev == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if ev.Type != event.TypeLostEvents && ev.Type != event.TypeRateLimitInfo {
		if !e.filters.Pass(ev) {
			e.losses.add(ReasonFiltered, "", 1)
			return
		}
		if e.limiter != nil && !bypassesRateLimit(ev) && !e.limiter.allow(e.now()) {
			e.losses.add(ReasonRateLimited, "", 1)
			return
		}
	}
	if !e.gate.writes(ev) {
		if len(e.evsubs) > 0 {
			e.publishEvents(ev)
		}
		return
	}
	line := e.enc.AppendJSON(e.buf[:0], ev, e.nodeName)
	e.buf = line
	if e.mask != nil {
		e.alt = e.mask.Apply(e.alt[:0], line)
		line = e.alt
	}
	line = append(line, '\n')
	e.metrics.countEvent(ev)
	for _, q := range e.queues {
		if !q.push(line, wake) {
			e.losses.add(ReasonQueueFull, q.name, 1)
		}
	}
	if len(e.subs) > 0 {
		e.publish(ev, line)
	}
	if len(e.evsubs) > 0 {
		e.publishEvents(ev)
	}
}

// ReportLost counts n events lost for reason before they reached the
// exporter, for example ReasonRingbufFull. They appear in
// vigil_events_lost_total and in the next lost_events record.
func (e *Exporter) ReportLost(reason string, n uint64) {
	e.losses.add(reason, "", n)
}

// Lost returns the number of events lost so far for reason, in all sinks.
func (e *Exporter) Lost(reason string) uint64 { return e.losses.total(reason) }

// SinkStatus is the state of one sink, for health checks.
type SinkStatus struct {
	Name          string
	QueuedLines   int64
	QueuedBytes   int64
	LostQueueFull uint64
	LostSinkError uint64
}

// Status returns the state of every sink.
func (e *Exporter) Status() []SinkStatus {
	out := make([]SinkStatus, 0, len(e.queues))
	for _, q := range e.queues {
		out = append(out, SinkStatus{
			Name: q.name, QueuedLines: q.lines.Load(), QueuedBytes: q.bytes.Load(),
			LostQueueFull: e.losses.counter(lossKey{ReasonQueueFull, q.name}).n.Load(),
			LostSinkError: e.losses.counter(lossKey{ReasonSinkError, q.name}).n.Load(),
		})
	}
	return out
}

// Run starts one goroutine per sink and the loss reports, and returns when
// ctx ends, after a last loss report and after the sinks had
// --export-flush-timeout to deliver what was queued.
func (e *Exporter) Run(ctx context.Context) error {
	if !e.running.CompareAndSwap(false, true) {
		return errors.New("exporter: Run called twice")
	}
	writeCtx, cancelWrites := context.WithCancel(context.Background())
	defer cancelWrites()
	sinkCtx, stopSinks := context.WithCancel(context.Background())
	defer stopSinks()

	var writers, runners sync.WaitGroup
	for i, s := range e.sinks {
		q := e.queues[i]
		writers.Add(1)
		go func() {
			defer writers.Done()
			for {
				c := q.pop(writeCtx)
				if c == nil {
					return
				}
				s.Write(writeCtx, c.data, c.lines)
				q.release(c)
			}
		}()
		runners.Add(1)
		go func() {
			defer runners.Done()
			if err := s.Run(sinkCtx); err != nil {
				e.log.WithError(err).WithField(logFieldSink, s.Name()).Error("sink stopped")
			}
		}()
	}

	t := time.NewTicker(time.Duration(e.cfg.LostEventsInterval))
	defer t.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-t.C:
			e.reportLosses()
		}
	}

	// Shutdown: a last loss report, then let the queues drain.
	e.reportLosses()
	for _, q := range e.queues {
		q.close()
	}
	flush := time.Duration(e.cfg.FlushTimeout)
	drained := make(chan struct{})
	go func() { writers.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(flush):
		cancelWrites()
		select {
		case <-drained:
		case <-time.After(time.Second):
			// A write that ignores cancellation (a blocked stdout pipe):
			// leave it behind rather than hang the shutdown.
			e.log.Warn("a sink did not finish its last write")
		}
	}
	for _, q := range e.queues {
		if n := q.lines.Load(); n > 0 {
			e.losses.add(ReasonSinkError, q.name, uint64(n))
			e.log.WithField(logFieldSink, q.name).WithField("lines", n).Warn("lines still queued at shutdown, lost")
		}
	}
	stopSinks()
	runners.Wait()
	closeCtx, cancel := context.WithTimeout(context.Background(), flush)
	defer cancel()
	var errs []error
	for _, s := range e.sinks {
		if err := s.Close(closeCtx); err != nil {
			errs = append(errs, fmt.Errorf("close %s sink: %w", s.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// reportLosses exports lost_events and rate_limit_info records for the
// losses since the last report.
func (e *Exporter) reportLosses() {
	for _, ev := range e.losses.deltas(e.now()) {
		if ev.Lost != nil {
			e.log.WithField(logFieldReason, ev.Lost.Reason).WithField(logFieldSink, ev.Lost.Sink).
				WithField("count", ev.Lost.Count).Debug("events lost")
		}
		e.Export(ev)
	}
}
