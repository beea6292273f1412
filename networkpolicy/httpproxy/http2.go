package httpproxy

import (
	"bytes"
	"errors"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/vigilsec/vigil/event"
)

// Limits of the HTTP/2 reader of visibility ports: what one connection
// may hold in the agent. Past them parsing stops (counted) and the bytes
// still flow.
const (
	// h2MaxTable bounds each direction's HPACK dynamic table; a peer
	// that raises its table above it stops parsing.
	h2MaxTable = 64 << 10
	// h2MaxFrame bounds a frame read (peers may agree on up to 16 MiB).
	h2MaxFrame = 256 << 10
	// h2MaxStreams bounds the streams tracked at once; the streams
	// past it are forwarded and not reported (counted).
	h2MaxStreams = 256
)

// h2Stream is one request and its response, as far as seen.
type h2Stream struct {
	f         Flow
	start     time.Time
	responded bool
}

// h2Conn follows the streams of one HTTP/2 connection from copies of the
// bytes both ways; the two directions' readers share it.
type h2Conn struct {
	s       *session
	mu      sync.Mutex
	streams map[uint32]*h2Stream
	// last is the highest stream the client opened: HEADERS on a
	// lower one are trailers or belong to a stream not tracked.
	last uint32
}

// tap hands the bytes forwarded one way to that direction's reader and
// never fails, so that forwarding does not depend on parsing: once the
// reader has stopped, writes are dropped.
type tap struct{ w *io.PipeWriter }

func (t tap) Write(b []byte) (int, error) {
	_, _ = t.w.Write(b)
	return len(b), nil
}

// serveHTTP2 passes a connection of HTTP/2 with prior knowledge through
// unchanged and reports each stream (gRPC calls among them) when it ends.
func (s *session) serveHTTP2() {
	s.p.st.http2Parsed.Add(1)
	c := &h2Conn{s: s, streams: map[uint32]*h2Stream{}}
	cr, cw := io.Pipe()
	ur, uw := io.Pipe()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.read(cr, true) }()
	go func() { defer wg.Done(); c.read(ur, false) }()
	s.splice(tap{cw}, tap{uw})
	cw.Close()
	uw.Close()
	wg.Wait()
	c.flush()
}

// read follows one direction's frames until the bytes end or do not
// parse; then it lets the rest go by.
func (c *h2Conn) read(r *io.PipeReader, fromClient bool) {
	err := c.frames(r, fromClient)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		c.s.p.st.http2Errors.Add(1)
		c.s.p.log.WithError(err).WithField("destination", c.s.conn.f.Destination).Debug("HTTP/2 frames do not parse; the connection passes through unreported")
	}
	r.CloseWithError(errParseStopped)
}

var (
	errParseStopped = errors.New("HTTP/2 parsing stopped")
	errServerPush   = errors.New("HTTP/2 server push is not followed")
)

func (c *h2Conn) frames(r io.Reader, fromClient bool) error {
	if fromClient {
		pre := make([]byte, len(http2.ClientPreface))
		if _, err := io.ReadFull(r, pre); err != nil {
			return err
		}
		if !bytes.Equal(pre, []byte(http2.ClientPreface)) {
			return errors.New("bad HTTP/2 client preface")
		}
	}
	fr := http2.NewFramer(io.Discard, r)
	dec := hpack.NewDecoder(4096, nil)
	dec.SetAllowedMaxDynamicTableSize(h2MaxTable)
	fr.ReadMetaHeaders = dec
	fr.MaxHeaderListSize = uint32(c.s.p.cfg.MaxHeaderBytes)
	fr.SetMaxReadFrameSize(h2MaxFrame)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return err
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if fromClient {
				c.request(f)
			} else {
				c.response(f)
			}
		case *http2.DataFrame:
			c.data(f, fromClient)
		case *http2.RSTStreamFrame:
			c.end(f.StreamID)
		case *http2.PushPromiseFrame:
			// Its header block changes the HPACK table and the
			// Framer does not decode it: the rest would misread.
			return errServerPush
		}
	}
}

// request starts a stream on its request headers.
func (c *h2Conn) request(f *http2.MetaHeadersFrame) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.StreamID <= c.last {
		return // request trailers, or a stream not tracked
	}
	c.last = f.StreamID
	if len(c.streams) >= h2MaxStreams {
		c.s.p.st.http2StreamsDropped.Add(1)
		return
	}
	st := &h2Stream{f: c.s.conn.f, start: now}
	st.f.Time = now
	st.f.Verdict = event.VerdictForwarded
	h := &st.f.HTTP
	*h = event.HTTP{Method: f.PseudoValue("method"), Protocol: "HTTP/2"}
	target := f.PseudoValue("path")
	if c.s.p.cfg.RedactQuery {
		target, _, _ = strings.Cut(target, "?")
	}
	host := f.PseudoValue("authority")
	if host == "" {
		host = c.s.conn.f.Destination.String()
	}
	scheme := f.PseudoValue("scheme")
	if scheme == "" {
		scheme = "http"
	}
	h.URL = scheme + "://" + host + target
	for _, want := range c.s.p.cfg.Headers {
		for _, hf := range f.RegularFields() {
			if strings.EqualFold(hf.Name, want) {
				h.Headers = append(h.Headers, event.HTTPHeader{Key: hf.Name, Value: hf.Value})
			}
		}
	}
	c.streams[f.StreamID] = st
	c.s.p.st.requests.Add(1)
}

// response reads response headers: the status, then trailers (gRPC's
// status); either may end the stream.
func (c *h2Conn) response(f *http2.MetaHeadersFrame) {
	c.mu.Lock()
	st, ok := c.streams[f.StreamID]
	if ok {
		if code := f.PseudoValue("status"); code != "" && !st.responded {
			n, _ := strconv.Atoi(code)
			if n >= 200 || n == 101 {
				st.f.HTTP.Code = uint32(n)
				st.responded = true
			}
		}
		for _, hf := range f.RegularFields() {
			if hf.Name == "grpc-status" {
				st.f.HTTP.Headers = append(st.f.HTTP.Headers, event.HTTPHeader{Key: "grpc-status", Value: hf.Value})
			}
		}
	}
	c.mu.Unlock()
	if ok && f.StreamEnded() {
		c.end(f.StreamID)
	}
}

func (c *h2Conn) data(f *http2.DataFrame, fromClient bool) {
	c.mu.Lock()
	st, ok := c.streams[f.StreamID]
	if ok {
		if fromClient {
			st.f.HTTP.RequestBytes += int64(len(f.Data()))
		} else {
			st.f.HTTP.ResponseBytes += int64(len(f.Data()))
		}
	}
	c.mu.Unlock()
	if ok && !fromClient && f.StreamEnded() {
		c.end(f.StreamID)
	}
}

// end reports a stream: the server ended its response or either side
// reset it.
func (c *h2Conn) end(id uint32) {
	c.mu.Lock()
	st, ok := c.streams[id]
	delete(c.streams, id)
	c.mu.Unlock()
	if ok {
		c.report(st)
	}
}

// flush reports the streams still open when the connection ended, as
// requests whose response did not complete.
func (c *h2Conn) flush() {
	c.mu.Lock()
	ids := make([]uint32, 0, len(c.streams))
	for id := range c.streams {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		c.end(id)
	}
}

func (c *h2Conn) report(st *h2Stream) {
	st.f.HTTP.Latency = time.Since(st.start)
	if st.responded {
		c.s.p.st.forwarded.Add(1)
	}
	c.s.p.cfg.Report(&st.f)
}
