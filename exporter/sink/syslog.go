package sink

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// SyslogOptions configure a syslog sink.
type SyslogOptions struct {
	// Network is "udp", "tcp" or "tls".
	Network string
	// Address is host:port.
	Address string
	// Facility is the syslog facility code, 0 to 23 (see ParseFacility).
	Facility int
	// Hostname goes into the HOSTNAME field, normally the node name.
	Hostname string
	// AppName defaults to "vigil".
	AppName string
	// TLS is used for the "tls" network.
	TLS *tls.Config
	// Timeout bounds connecting and each write (default 5s).
	Timeout time.Duration
}

// ParseSyslogURL splits udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT.
func ParseSyslogURL(s string) (network, address string, err error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", "", err
	}
	switch u.Scheme {
	case "udp", "tcp", "tls":
	default:
		return "", "", fmt.Errorf("scheme %q: want udp://, tcp:// or tls://HOST:PORT", u.Scheme)
	}
	if u.Path != "" || u.RawQuery != "" || u.User != nil {
		return "", "", fmt.Errorf("%q: want only %s://HOST:PORT", s, u.Scheme)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return "", "", fmt.Errorf("address %q: %w", u.Host, err)
	}
	if host == "" {
		return "", "", fmt.Errorf("address %q has no host", u.Host)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", "", fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return u.Scheme, u.Host, nil
}

var facilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
	"uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "security": 13, "console": 14,
	"solaris-cron": 15, "local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20,
	"local5": 21, "local6": 22, "local7": 23,
}

// ParseFacility returns the code of a facility name such as "daemon" or
// "local3".
func ParseFacility(name string) (int, error) {
	if f, ok := facilities[strings.ToLower(name)]; ok {
		return f, nil
	}
	return 0, fmt.Errorf("unknown facility %q (kern, user, mail, daemon, auth, syslog, ..., local0 to local7)", name)
}

// Severities of RFC 5424 used for events.
const (
	severityWarning = 4
	severityNotice  = 5
	severityInfo    = 6
)

// maxDatagram is the largest UDP payload over IPv4.
const maxDatagram = 65507

// Syslog sends each line as one RFC 5424 message: one datagram per message
// over UDP, octet-counted framing (RFC 6587) over TCP and TLS. Alerts and
// loss records are sent with severity warning, the rest as info.
type Syslog struct {
	opts   SyslogOptions
	hooks  Hooks
	errs   *errorLog
	conn   net.Conn
	retry  time.Time
	wait   time.Duration
	buf    []byte
	ends   []int
	procID string
	// failed is set after a failure, until a connection succeeds: the
	// next connection attempt is a retry.
	failed    bool
	connected atomic.Bool
}

var _ Sink = (*Syslog)(nil)

// NewSyslog returns a syslog sink; it connects on the first write.
func NewSyslog(opts SyslogOptions, hooks Hooks) (*Syslog, error) {
	switch opts.Network {
	case "udp", "tcp", "tls":
	default:
		return nil, fmt.Errorf("syslog network %q: want udp, tcp or tls", opts.Network)
	}
	if opts.Facility < 0 || opts.Facility > 23 {
		return nil, fmt.Errorf("syslog facility %d out of range 0-23", opts.Facility)
	}
	if opts.AppName == "" {
		opts.AppName = "vigil"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	return &Syslog{opts: opts, hooks: hooks, errs: newErrorLog(hooks.Log, "syslog"),
		procID: strconv.Itoa(os.Getpid())}, nil
}

// Name implements Sink.
func (s *Syslog) Name() string { return "syslog" }

func (s *Syslog) connect() error {
	if s.conn != nil {
		return nil
	}
	if time.Now().Before(s.retry) {
		return errors.New("not connected, waiting before the next attempt")
	}
	if s.failed {
		s.hooks.retry()
	}
	d := net.Dialer{Timeout: s.opts.Timeout}
	var conn net.Conn
	var err error
	switch s.opts.Network {
	case "tls":
		conn, err = tls.DialWithDialer(&d, "tcp", s.opts.Address, s.opts.TLS)
	default:
		conn, err = d.Dial(s.opts.Network, s.opts.Address)
	}
	if err != nil {
		s.failed = true
		s.hooks.failure(FailureNetwork)
		s.backoff()
		return err
	}
	s.conn, s.wait, s.failed = conn, 0, false
	s.connected.Store(true)
	return nil
}

// Connected reports whether the sink holds a connection to the receiver
// (for UDP: a socket); safe for concurrent use.
func (s *Syslog) Connected() bool { return s.connected.Load() }

func (s *Syslog) backoff() {
	switch {
	case s.wait == 0:
		s.wait = 500 * time.Millisecond
	case s.wait < 30*time.Second:
		s.wait *= 2
	}
	s.retry = time.Now().Add(s.wait)
}

func (s *Syslog) disconnect() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
	s.connected.Store(false)
	s.failed = true
	s.backoff()
}

// appendHeader appends "<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - ".
func (s *Syslog) appendHeader(dst []byte, line []byte, now time.Time) []byte {
	key := eventKey(line)
	sev := severityInfo
	switch key {
	case "alert", "lost_events":
		sev = severityWarning
	case "rate_limit_info":
		sev = severityNotice
	}
	dst = append(dst, '<')
	dst = strconv.AppendInt(dst, int64(s.opts.Facility*8+sev), 10)
	dst = append(dst, ">1 "...)
	dst = now.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000000Z")
	dst = append(dst, ' ')
	dst = appendHeaderField(dst, s.opts.Hostname, 255)
	dst = append(dst, ' ')
	dst = appendHeaderField(dst, s.opts.AppName, 48)
	dst = append(dst, ' ')
	dst = append(dst, s.procID...)
	dst = append(dst, ' ')
	dst = appendHeaderField(dst, key, 32)
	return append(dst, " - "...)
}

// appendHeaderField writes printable ASCII only, as RFC 5424 requires, or
// the NILVALUE "-".
func appendHeaderField(dst []byte, s string, max int) []byte {
	n := 0
	for i := 0; i < len(s) && n < max; i++ {
		if c := s[i]; c > 32 && c < 127 {
			dst = append(dst, c)
			n++
		}
	}
	if n == 0 {
		dst = append(dst, '-')
	}
	return dst
}

// eventKey returns the first key of a JSON line: the event type.
func eventKey(line []byte) string {
	if !bytes.HasPrefix(line, []byte(`{"`)) {
		return ""
	}
	end := bytes.IndexByte(line[2:], '"')
	if end < 0 || end > 32 {
		return ""
	}
	return string(line[2 : 2+end])
}

// Write implements Sink.
func (s *Syslog) Write(_ context.Context, lines []byte, count int) {
	if err := s.connect(); err != nil {
		s.hooks.lost(ReasonSinkError, count)
		s.errs.error(err, "syslog connect failed, lines lost", count)
		return
	}
	now := time.Now()
	if s.opts.Network == "udp" {
		s.writeDatagrams(lines, now)
		return
	}
	// One buffer of octet-counted frames, one write.
	s.buf, s.ends = s.buf[:0], s.ends[:0]
	var hdr []byte
	for rest := lines; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			i = len(rest)
		}
		line := rest[:i]
		rest = rest[min(i+1, len(rest)):]
		hdr = s.appendHeader(hdr[:0], line, now)
		s.buf = strconv.AppendInt(s.buf, int64(len(hdr)+len(line)), 10)
		s.buf = append(s.buf, ' ')
		s.buf = append(s.buf, hdr...)
		s.buf = append(s.buf, line...)
		s.ends = append(s.ends, len(s.buf))
	}
	start := time.Now()
	s.conn.SetWriteDeadline(start.Add(s.opts.Timeout))
	n, err := s.conn.Write(s.buf)
	s.hooks.latency(time.Since(start))
	if err == nil {
		s.hooks.delivered(len(s.ends))
		s.errs.recovered()
		return
	}
	done := 0
	for _, end := range s.ends {
		if end <= n {
			done++
		}
	}
	s.hooks.failure(FailureWrite)
	s.disconnect()
	s.hooks.delivered(done)
	s.hooks.lost(ReasonSinkError, len(s.ends)-done)
	s.errs.error(err, "syslog write failed, lines lost", len(s.ends)-done)
}

func (s *Syslog) writeDatagrams(lines []byte, now time.Time) {
	start := time.Now()
	var failed, sent int
	var lastErr error
	for rest := lines; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			i = len(rest)
		}
		line := rest[:i]
		rest = rest[min(i+1, len(rest)):]
		s.buf = s.appendHeader(s.buf[:0], line, now)
		s.buf = append(s.buf, line...)
		if len(s.buf) > maxDatagram {
			s.hooks.failure(FailureTooLarge)
			failed++
			lastErr = fmt.Errorf("message of %d bytes does not fit in a UDP datagram", len(s.buf))
			continue
		}
		s.conn.SetWriteDeadline(time.Now().Add(s.opts.Timeout))
		if _, err := s.conn.Write(s.buf); err != nil {
			s.hooks.failure(FailureWrite)
			failed++
			lastErr = err
			continue
		}
		sent++
	}
	s.hooks.latency(time.Since(start))
	s.hooks.delivered(sent)
	if failed > 0 {
		s.hooks.lost(ReasonSinkError, failed)
		s.errs.error(lastErr, "syslog datagrams lost", failed)
	} else {
		s.errs.recovered()
	}
}

// Run implements Sink.
func (s *Syslog) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// Close implements Sink.
func (s *Syslog) Close(context.Context) error {
	s.connected.Store(false)
	if s.conn != nil {
		err := s.conn.Close()
		s.conn = nil
		return err
	}
	return nil
}
