package sink

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/vigilsec/vigil/exporter/spool"
)

// WebhookOptions configure an HTTP webhook sink.
type WebhookOptions struct {
	URL     string
	Headers http.Header
	// Gzip compresses request bodies (Content-Encoding: gzip).
	Gzip bool
	// BatchBytes closes a batch once it holds this much NDJSON (default 1 MiB).
	BatchBytes int
	// BatchInterval sends a non-empty batch at least this often (default 1s).
	BatchInterval time.Duration
	// Timeout bounds one request (default 10s).
	Timeout time.Duration
	// MaxRetryInterval caps the exponential backoff between attempts
	// (default 30s). Attempts go on until the batch is delivered.
	MaxRetryInterval time.Duration
	TLS              *tls.Config
	// SpoolDir keeps batches on disk while the receiver is unreachable and
	// across restarts; empty keeps them in memory only.
	SpoolDir string
	Spool    spool.Options
}

// Webhook posts batches of lines (NDJSON) to an HTTP endpoint. Batches wait
// in a spool, in order, until the receiver accepts them: 2xx is delivered,
// 408, 429, 5xx and network errors are retried with exponential backoff
// (honouring Retry-After), other statuses drop the batch as a sink error.
type Webhook struct {
	opts   WebhookOptions
	client *http.Client
	hooks  Hooks
	errs   *errorLog
	spool  *spool.Spool

	mu      sync.Mutex
	batch   []byte
	count   int
	started time.Time

	gz     *gzip.Writer
	body   bytes.Buffer
	sender sync.WaitGroup
	// reqCtx bounds requests in flight. It ends only when Close's deadline
	// passes, so that stopping Run does not abort a request the receiver may
	// already have taken (which would deliver that batch twice).
	reqCtx    context.Context
	cancelReq context.CancelFunc
}

var _ Sink = (*Webhook)(nil)

// NewWebhook checks the options and opens the spool.
func NewWebhook(opts WebhookOptions, hooks Hooks) (*Webhook, error) {
	u, err := url.Parse(opts.URL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%q: want an http:// or https:// URL with a host", opts.URL)
	}
	if opts.BatchBytes <= 0 {
		opts.BatchBytes = 1 << 20
	}
	if opts.BatchInterval <= 0 {
		opts.BatchInterval = time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.MaxRetryInterval <= 0 {
		opts.MaxRetryInterval = 30 * time.Second
	}
	if opts.Spool.Log == nil {
		opts.Spool.Log = hooks.Log
	}
	sp, err := spool.Open(opts.SpoolDir, opts.Spool)
	if err != nil {
		return nil, err
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = opts.TLS
	transport.MaxIdleConnsPerHost = 2
	gz, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	reqCtx, cancelReq := context.WithCancel(context.Background())
	return &Webhook{
		reqCtx:    reqCtx,
		cancelReq: cancelReq,
		opts:      opts,
		client:    &http.Client{Transport: transport, Timeout: opts.Timeout},
		hooks:     hooks,
		errs:      newErrorLog(hooks.Log, "webhook"),
		spool:     sp,
		gz:        gz,
	}, nil
}

// Name implements Sink.
func (s *Webhook) Name() string { return "webhook" }

// Write implements Sink: lines join the open batch, which goes to the spool
// when it is full.
func (s *Webhook) Write(_ context.Context, lines []byte, count int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.batch) == 0 {
		s.started = time.Now()
	}
	s.batch = append(s.batch, lines...)
	s.count += count
	if len(s.batch) >= s.opts.BatchBytes {
		s.closeBatch()
	}
}

// closeBatch moves the open batch to the spool. Called with mu held.
func (s *Webhook) closeBatch() {
	if len(s.batch) == 0 {
		return
	}
	err := s.spool.Give(s.batch, s.count)
	s.batch = s.spool.Buffer(s.opts.BatchBytes + 64<<10)
	if err != nil {
		reason := ReasonSinkError
		if errors.Is(err, spool.ErrFull) {
			reason = ReasonQueueFull
		}
		s.hooks.lost(reason, s.count)
		s.errs.error(err, "webhook spool refused a batch, lines lost", s.count)
	}
	s.count = 0
}

// Spooled returns the batches and lines waiting for delivery.
func (s *Webhook) Spooled() spool.Stats { return s.spool.Stats() }

// Run implements Sink: it closes batches on time and delivers the spool.
func (s *Webhook) Run(ctx context.Context) error {
	s.sender.Add(1)
	go func() {
		defer s.sender.Done()
		s.deliver(ctx)
	}()
	t := time.NewTicker(s.opts.BatchInterval / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.mu.Lock()
			if len(s.batch) > 0 && time.Since(s.started) >= s.opts.BatchInterval {
				s.closeBatch()
			}
			s.mu.Unlock()
		}
	}
}

// deliver posts spooled batches in order until ctx ends.
func (s *Webhook) deliver(ctx context.Context) {
	for {
		rec, err := s.spool.Next(ctx)
		if err != nil {
			return
		}
		if s.post(ctx, rec) {
			s.spool.Commit()
			continue
		}
		if ctx.Err() != nil {
			return // stays in the spool
		}
	}
}

// post sends one batch, retrying until it is delivered, refused for good
// (true in both cases: the batch leaves the spool) or ctx ends between
// attempts (false). A request in flight is not aborted by ctx.
func (s *Webhook) post(ctx context.Context, rec spool.Record) bool {
	wait := 200 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil {
			return false
		}
		if attempt > 0 {
			s.hooks.retry()
		}
		status, retryAfter, err := s.send(s.reqCtx, rec.Data)
		switch {
		case err == nil && status/100 == 2:
			s.hooks.delivered(rec.Count)
			s.errs.recovered()
			return true
		case err == nil && !retryable(status):
			s.hooks.failure(FailureHTTPRefused)
			s.hooks.lost(ReasonSinkError, rec.Count)
			s.errs.error(fmt.Errorf("HTTP %d", status), "webhook refused a batch, lines lost", rec.Count)
			return true
		case err == nil:
			s.hooks.failure(statusFailure(status))
			err = fmt.Errorf("HTTP %d", status)
		default:
			s.hooks.failure(FailureNetwork)
		}
		if ctx.Err() != nil {
			return false
		}
		s.errs.error(err, "webhook delivery failed, will retry", 0)
		d := wait
		if retryAfter > d {
			d = min(retryAfter, s.opts.MaxRetryInterval)
		}
		d = d/2 + rand.N(d) // jitter in [d/2, 3d/2)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d):
		}
		wait = min(wait*2, s.opts.MaxRetryInterval)
	}
}

// statusFailure names the failure of a retried status.
func statusFailure(status int) string {
	switch status {
	case http.StatusTooManyRequests:
		return FailureHTTP429
	case http.StatusRequestTimeout:
		return FailureHTTP408
	}
	return FailureHTTP5xx
}

func retryable(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500
}

func (s *Webhook) send(ctx context.Context, data []byte) (status int, retryAfter time.Duration, err error) {
	body := data
	if s.opts.Gzip {
		s.body.Reset()
		s.gz.Reset(&s.body)
		s.gz.Write(data)
		if err := s.gz.Close(); err != nil {
			return 0, 0, err
		}
		body = s.body.Bytes()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.opts.URL, bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	for k, vs := range s.opts.Headers {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	if s.opts.Gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "vigil")
	}
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	s.hooks.latency(time.Since(start))
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		retryAfter = time.Duration(secs) * time.Second
	}
	return resp.StatusCode, retryAfter, nil
}

// Close implements Sink: it spools the open batch, lets the sender deliver
// until ctx ends, then closes the spool. Batches still waiting are written
// to the spool directory for the next start; without one they are counted
// lost.
func (s *Webhook) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closeBatch()
	s.mu.Unlock()
	closed := make(chan struct{})
	defer close(closed)
	go func() {
		select {
		case <-ctx.Done():
			s.cancelReq()
		case <-closed:
		}
	}()
	defer s.cancelReq()
	s.sender.Wait() // the sender stops with Run's context, after its request
	done := make(chan struct{})
	go func() {
		defer close(done)
		for s.spool.Stats().Records > 0 {
			rec, err := s.spool.Next(ctx)
			if err != nil || !s.post(ctx, rec) {
				return
			}
			s.spool.Commit()
		}
	}()
	<-done
	lost, err := s.spool.Close()
	if lost > 0 {
		s.hooks.lost(ReasonSinkError, int(lost))
		cause := errors.New("receiver unreachable at shutdown and no spool directory")
		if err != nil {
			cause = err
		}
		s.errs.error(cause, "webhook batches lost", int(lost))
	}
	return err
}
