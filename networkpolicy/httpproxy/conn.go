package httpproxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"os"
	"strings"
	"time"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/networkpolicy"
)

var (
	errHeaderTooLarge = errors.New("request headers too large")
	errSmuggling      = errors.New("request has both Content-Length and Transfer-Encoding")
	errHeaderTimeout  = errors.New("request headers not complete in time")
	errHTTP2          = errors.New("HTTP/2 connection preface")
)

// http2Preface starts a connection of HTTP/2 with prior knowledge (h2c,
// gRPC without TLS): refused on enforced ports, passed through and
// reported per stream on visibility ports (http2.go).
const http2Preface = "PRI * HTTP/2.0\r\n"

// deadlineConn sets a read deadline before each read: the fixed one when
// set, else IdleTimeout from now.
type deadlineConn struct {
	*net.TCPConn
	idle  time.Duration
	fixed time.Time
}

func (d *deadlineConn) Read(b []byte) (int, error) {
	switch {
	case !d.fixed.IsZero():
		_ = d.TCPConn.SetReadDeadline(d.fixed)
	case d.idle == 0:
		_ = d.TCPConn.SetReadDeadline(time.Time{})
	default:
		_ = d.TCPConn.SetReadDeadline(time.Now().Add(d.idle))
	}
	return d.TCPConn.Read(b)
}

// session is one proxied connection.
type session struct {
	p        *Proxy
	l        *listener
	conn     flowBase
	client   *deadlineConn
	upstream *deadlineConn
	cr, ur   *bufio.Reader
	cw, uw   *bufio.Writer
	// rules are the restrictions of each side (nil: none); enforce: any.
	egress, ingress *networkpolicy.HTTPRules
	enforce         bool
}

// flowBase is what every flow of a connection shares.
type flowBase struct {
	f Flow
}

func (p *Proxy) handle(l *listener, client *net.TCPConn) {
	slot, ok := slotOf(client.RemoteAddr())
	if !ok {
		p.st.unknownSlot.Add(1)
		reset(client)
		return
	}
	hc, err := p.cfg.Conns.TakeHTTPConn(slot)
	if err != nil {
		p.st.unknownSlot.Add(1)
		p.log.WithError(err).WithField("slot", slot).Debug("redirected connection unknown")
		reset(client)
		return
	}
	s := &session{p: p, l: l}
	s.conn.f = Flow{Conn: hc, Destination: hc.Destination}
	e := p.cfg.Policy.Engine()
	ip, ok := p.cfg.PodAddr(hc.CgroupID)
	if e == nil || !ok {
		p.st.noPod.Add(1)
		reset(client)
		return
	}
	from, to := e.Address(ip), e.Address(hc.Destination.Addr())
	s.conn.f.From, s.conn.f.To = from, to
	res := e.Check(from, to, networkpolicy.ProtoTCP, hc.Destination.Port())
	if res.Verdict != networkpolicy.Allow {
		// Policy changed between connect and accept.
		p.st.policyDenied.Add(1)
		reset(client)
		return
	}
	s.egress = networkpolicy.HTTPFor(res.Egress, hc.Destination.Port())
	s.ingress = networkpolicy.HTTPFor(res.Ingress, hc.Destination.Port())
	s.enforce = s.egress != nil || s.ingress != nil
	s.conn.f.Direction = event.DirectionEgress
	if s.ingress != nil {
		s.conn.f.Direction = event.DirectionIngress
	}
	up, err := p.dial(l, hc.Destination)
	if err != nil {
		p.st.dialFailed.Add(1)
		p.log.WithError(err).WithField("destination", hc.Destination).Debug("HTTP proxy cannot connect to the destination")
		reset(client)
		return
	}
	if la, ok := up.LocalAddr().(*net.TCPAddr); ok {
		a, _ := netip.AddrFromSlice(la.IP.To4())
		s.conn.f.Source = netip.AddrPortFrom(a, uint16(la.Port))
	}
	s.client = &deadlineConn{TCPConn: client, idle: p.cfg.IdleTimeout}
	s.upstream = &deadlineConn{TCPConn: up, idle: p.cfg.IdleTimeout}
	s.cr = bufio.NewReaderSize(s.client, p.cfg.MaxHeaderBytes)
	s.cw = bufio.NewWriter(client)
	s.ur = bufio.NewReaderSize(s.upstream, p.cfg.MaxHeaderBytes)
	s.uw = bufio.NewWriter(up)
	defer up.Close()
	defer client.Close()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-l.ctx.Done():
			client.Close()
			up.Close()
		case <-done:
		}
	}()
	s.serve()
}

// serve reads requests until the connection ends.
func (s *session) serve() {
	for first := true; ; first = false {
		req, err := s.readRequest()
		if err != nil {
			if first && !s.enforce && errors.Is(err, errHTTP2) {
				s.serveHTTP2()
				return
			}
			if first && !s.enforce && !errors.Is(err, io.EOF) && !isTimeout(err) {
				// Visibility only and not HTTP: let it through.
				s.p.st.passthrough.Add(1)
				s.splice(nil, nil)
				return
			}
			s.refuseMalformed(err)
			return
		}
		s.p.st.requests.Add(1)
		if !s.exchange(req) {
			return
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded)
}

// readRequest waits for a request (IdleTimeout), reads its headers within
// HeaderTimeout and MaxHeaderBytes, and refuses ambiguous framing.
func (s *session) readRequest() (*http.Request, error) {
	s.client.fixed = time.Time{}
	if _, err := s.cr.Peek(1); err != nil {
		return nil, err
	}
	s.client.fixed = time.Now().Add(s.p.cfg.HeaderTimeout)
	head, err := s.peekHeader()
	if err != nil {
		return nil, err
	}
	if bytes.HasPrefix(head, []byte(http2Preface)) {
		return nil, errHTTP2
	}
	if err := checkFraming(head); err != nil {
		return nil, err
	}
	req, err := http.ReadRequest(s.cr)
	s.client.fixed = time.Time{}
	return req, err
}

// peekHeader returns the request line and headers from the buffer,
// reading until their end.
func (s *session) peekHeader() ([]byte, error) {
	for {
		b, _ := s.cr.Peek(s.cr.Buffered())
		if i := headerEnd(b); i >= 0 {
			return b[:i], nil
		}
		if len(b) >= s.p.cfg.MaxHeaderBytes {
			return nil, errHeaderTooLarge
		}
		if _, err := s.cr.Peek(len(b) + 1); err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return nil, errHeaderTooLarge
			}
			if isTimeout(err) {
				return nil, errHeaderTimeout
			}
			return nil, err
		}
	}
}

// headerEnd returns the length of the header block (through the empty
// line; lines may end in LF alone, as net/http accepts), or -1.
func headerEnd(b []byte) int {
	for i := 0; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		if i+1 < len(b) && b[i+1] == '\n' {
			return i + 2
		}
		if i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n' {
			return i + 3
		}
	}
	return -1
}

// checkFraming refuses a request with both Content-Length and
// Transfer-Encoding (RFC 9112 6.3: a smuggling attempt), which net/http
// would accept by dropping Content-Length.
func checkFraming(head []byte) error {
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(head)))
	if _, err := tp.ReadLine(); err != nil {
		return nil // net/http reports it
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		return nil
	}
	if len(h["Content-Length"]) > 0 && len(h["Transfer-Encoding"]) > 0 {
		return errSmuggling
	}
	return nil
}

// refuseMalformed answers a request that could not be read, counted by
// reason, and ends the connection.
func (s *session) refuseMalformed(err error) {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, io.ErrUnexpectedEOF):
		return
	case errors.Is(err, errHeaderTooLarge):
		s.p.st.headerTooLarge.Add(1)
		s.reply(431, "Request Header Fields Too Large")
	case errors.Is(err, errHTTP2):
		s.p.st.http2.Add(1)
		s.reply(400, "Bad Request")
	case errors.Is(err, errSmuggling):
		s.p.st.smuggling.Add(1)
		s.reply(400, "Bad Request")
	case errors.Is(err, errHeaderTimeout):
		s.p.st.headerTimeout.Add(1)
		s.reply(408, "Request Timeout")
	case isTimeout(err):
		// An idle keep-alive connection: close quietly.
		return
	default:
		s.p.st.badRequest.Add(1)
		s.reply(400, "Bad Request")
	}
}

// reply writes a short response and marks the connection for closing.
func (s *session) reply(code int, body string) {
	_ = s.client.SetWriteDeadline(time.Now().Add(s.p.cfg.IdleTimeout))
	resp := &http.Response{
		StatusCode: code, ProtoMajor: 1, ProtoMinor: 1, Close: true,
		Header:        http.Header{"Content-Type": {"text/plain"}},
		ContentLength: int64(len(body) + 2), Body: io.NopCloser(strings.NewReader(body + "\r\n")),
	}
	_ = resp.Write(s.cw)
	_ = s.cw.Flush()
}

// exchange forwards or refuses one request; false ends the connection.
func (s *session) exchange(req *http.Request) bool {
	f := s.conn.f
	f.Time = time.Now()
	f.HTTP = event.HTTP{Method: req.Method, URL: s.url(req), Protocol: req.Proto, RequestBytes: req.ContentLength, ResponseBytes: -1}
	for _, h := range s.p.cfg.Headers {
		for _, v := range req.Header.Values(h) {
			f.HTTP.Headers = append(f.HTTP.Headers, event.HTTPHeader{Key: http.CanonicalHeaderKey(h), Value: v})
		}
	}
	r := &networkpolicy.Request{Method: req.Method, Target: req.RequestURI, Host: req.Host, Header: req.Header}
	for _, side := range []*networkpolicy.HTTPRules{s.ingress, s.egress} {
		if side == nil {
			continue
		}
		f.Policies = appendPolicies(f.Policies, side)
		if side.Allows(r) {
			continue
		}
		s.p.st.denied.Add(1)
		f.Verdict = event.VerdictDropped
		f.Policies = appendPolicies(nil, side)
		f.HTTP.Code = http.StatusForbidden
		f.HTTP.Latency = time.Since(f.Time)
		keep := req.ContentLength == 0 && !req.Close
		s.deny(keep)
		f.HTTP.ResponseBytes = int64(len(accessDenied))
		s.p.cfg.Report(&f)
		return keep
	}
	f.Verdict = event.VerdictForwarded
	if strings.EqualFold(req.Header.Get("Expect"), "100-continue") {
		// The client waits for this before sending the body that
		// forwarding reads; the server gets the request without it.
		req.Header.Del("Expect")
		if _, err := s.cw.WriteString("HTTP/1.1 100 Continue\r\n\r\n"); err != nil || s.cw.Flush() != nil {
			return false
		}
	}
	if _, ok := req.Header["User-Agent"]; !ok {
		req.Header["User-Agent"] = []string{""} // net/http would add its own
	}
	_ = s.upstream.SetWriteDeadline(time.Now().Add(s.p.cfg.IdleTimeout))
	if err := req.Write(s.uw); err != nil {
		s.p.st.upstreamErrors.Add(1)
		return false
	}
	if err := s.uw.Flush(); err != nil {
		s.p.st.upstreamErrors.Add(1)
		return false
	}
	start := time.Now()
	var resp *http.Response
	for {
		s.upstream.fixed = time.Now().Add(s.p.cfg.ResponseTimeout)
		var err error
		resp, err = http.ReadResponse(s.ur, req)
		s.upstream.fixed = time.Time{}
		if err != nil {
			if isTimeout(err) {
				s.p.st.responseTimeout.Add(1)
				s.reply(http.StatusGatewayTimeout, "upstream request timeout")
			} else {
				s.p.st.upstreamErrors.Add(1)
				s.reply(http.StatusBadGateway, "upstream connection error")
			}
			// Reported as a request without a response.
			s.p.cfg.Report(&f)
			return false
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			_ = resp.Write(s.cw)
			if s.cw.Flush() != nil {
				return false
			}
			continue
		}
		break
	}
	f.HTTP.Code = uint32(resp.StatusCode)
	f.HTTP.Latency = time.Since(start)
	_ = s.client.SetWriteDeadline(time.Time{})
	cb := &countingReader{r: resp.Body}
	resp.Body = cb
	err := resp.Write(s.cw)
	if err == nil {
		err = s.cw.Flush()
	}
	f.HTTP.ResponseBytes = cb.n
	s.p.st.forwarded.Add(1)
	s.p.cfg.Report(&f)
	if err != nil {
		return false
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		s.splice(nil, nil)
		return false
	}
	return !req.Close && !resp.Close
}

const accessDenied = "Access denied\r\n"

// deny answers 403 as Cilium's proxy does.
func (s *session) deny(keep bool) {
	_ = s.client.SetWriteDeadline(time.Now().Add(s.p.cfg.IdleTimeout))
	resp := &http.Response{
		StatusCode: http.StatusForbidden, ProtoMajor: 1, ProtoMinor: 1, Close: !keep,
		Header:        http.Header{"Content-Type": {"text/plain"}},
		ContentLength: int64(len(accessDenied)), Body: io.NopCloser(strings.NewReader(accessDenied)),
	}
	_ = resp.Write(s.cw)
	_ = s.cw.Flush()
}

func appendPolicies(out []string, h *networkpolicy.HTTPRules) []string {
	for _, ref := range h.Refs {
		name := ref.Policy.String()
		dup := false
		for _, o := range out {
			dup = dup || o == name
		}
		if !dup {
			out = append(out, name)
		}
	}
	return out
}

// url is the request as Hubble shows it.
func (s *session) url(req *http.Request) string {
	target := req.RequestURI
	if s.p.cfg.RedactQuery {
		target, _, _ = strings.Cut(target, "?")
	}
	if strings.HasPrefix(target, "/") {
		host := req.Host
		if host == "" {
			host = s.conn.f.Destination.String()
		}
		return "http://" + host + target
	}
	return target
}

type countingReader struct {
	r io.ReadCloser
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }

// splice copies both ways until either side ends (upgraded connections,
// HTTP/2 and what visibility cannot parse); the taps, when set, get a copy
// of what the client and the server sent.
func (s *session) splice(clientTap, upstreamTap io.Writer) {
	// Upgraded streams may idle as long as both ends like.
	s.client.fixed, s.upstream.fixed = time.Time{}, time.Time{}
	s.client.idle, s.upstream.idle = 0, 0
	done := make(chan struct{}, 2)
	go func() {
		var r io.Reader = s.cr
		if clientTap != nil {
			r = io.TeeReader(r, clientTap)
		}
		_, _ = io.Copy(s.upstream.TCPConn, r)
		_ = s.upstream.CloseWrite()
		done <- struct{}{}
	}()
	go func() {
		_ = s.cw.Flush()
		var r io.Reader = s.ur
		if upstreamTap != nil {
			r = io.TeeReader(r, upstreamTap)
		}
		_, _ = io.Copy(s.client.TCPConn, r)
		_ = s.client.CloseWrite()
		done <- struct{}{}
	}()
	<-done
	<-done
}
