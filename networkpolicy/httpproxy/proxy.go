package httpproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/networkpolicy"
	"github.com/vigilsec/vigil/networkpolicy/datapath"
)

// Defaults of Config.
const (
	DefaultPort            = 15001
	DefaultMaxHeaderBytes  = 16 << 10
	DefaultHeaderTimeout   = 10 * time.Second
	DefaultIdleTimeout     = 60 * time.Second
	DefaultResponseTimeout = 30 * time.Second
	DefaultDialTimeout     = 5 * time.Second
)

// Conns hands out the connections the datapath redirected.
type Conns interface {
	TakeHTTPConn(slot uint32) (datapath.HTTPConn, error)
}

// Policy gives the engine in force.
type Policy interface {
	Engine() *networkpolicy.Engine
}

// Config configures the proxy.
type Config struct {
	// Port is where the proxy listens, on 127.0.0.1 of each pod's network
	// namespace (0: DefaultPort). Pods must not use it.
	Port uint16
	// Conns and Policy are the datapath (required).
	Conns  Conns
	Policy Policy
	// PodAddr returns the address of the pod of a cgroup (required).
	PodAddr func(cgroupID uint64) (netip.Addr, bool)
	// Report receives a flow per request (required).
	Report func(*Flow)
	// MaxHeaderBytes bounds a request's line and headers; larger ones
	// get 431 (0: DefaultMaxHeaderBytes).
	MaxHeaderBytes int
	// HeaderTimeout bounds the time from a request's first byte to the end
	// of its headers (slowloris); IdleTimeout the wait for a request on a
	// kept-alive connection and for each read of a body; ResponseTimeout
	// the wait for response headers; DialTimeout the connect to the
	// destination. 0: the defaults.
	HeaderTimeout, IdleTimeout, ResponseTimeout, DialTimeout time.Duration
	// RedactQuery leaves the query string out of the URLs of flows.
	RedactQuery bool
	// Headers are the request headers flows report (none by default).
	Headers []string
}

func (c *Config) defaults() error {
	if c.Conns == nil || c.Policy == nil || c.PodAddr == nil || c.Report == nil {
		return errors.New("httpproxy config: Conns, Policy, PodAddr and Report are required")
	}
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.MaxHeaderBytes < 1024 {
		return fmt.Errorf("httpproxy config: MaxHeaderBytes %d is below 1024", c.MaxHeaderBytes)
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&c.HeaderTimeout, DefaultHeaderTimeout}, {&c.IdleTimeout, DefaultIdleTimeout}, {&c.ResponseTimeout, DefaultResponseTimeout}, {&c.DialTimeout, DefaultDialTimeout}} {
		if *d.v == 0 {
			*d.v = d.def
		}
		if *d.v < 0 {
			return fmt.Errorf("httpproxy config: negative timeout %s", *d.v)
		}
	}
	return nil
}

// Flow is one request the proxy saw, with its response.
type Flow struct {
	Time time.Time
	// Conn is what the datapath kept of the client's connect.
	Conn datapath.HTTPConn
	// Source is the client as the server sees it (the pod's address and
	// the proxy's port); Destination the original destination.
	Source, Destination netip.AddrPort
	From, To            networkpolicy.Endpoint
	Verdict             event.Verdict
	// Direction is the side whose rules decided: ingress (the server's)
	// when it has rules.http, else egress.
	Direction event.Direction
	// Policies are the policies whose rules allowed or, for a drop,
	// restrict the request.
	Policies []string
	HTTP     event.HTTP
}

// Stats count what the proxy did; every connection it closed without
// forwarding is counted by reason.
type Stats struct {
	Accepted, UnknownSlot, NoPod, PolicyDenied, DialFailed uint64
	Requests, Forwarded, Denied                            uint64
	BadRequest, HeaderTooLarge, Smuggling, HeaderTimeout   uint64
	ResponseTimeout, UpstreamErrors, Passthrough           uint64
	// HTTP2 counts connections refused for HTTP/2 with prior knowledge
	// on an enforced port. On a visibility port they pass through and
	// their streams are reported: HTTP2Parsed counts those connections,
	// HTTP2Errors those whose frames stopped parsing (the bytes still
	// flow), HTTP2StreamsDropped the streams not reported because the
	// connection had h2MaxStreams open.
	HTTP2, HTTP2Parsed, HTTP2Errors, HTTP2StreamsDropped uint64
}

type counters struct {
	accepted, unknownSlot, noPod, policyDenied, dialFailed atomic.Uint64
	requests, forwarded, denied                            atomic.Uint64
	badRequest, headerTooLarge, smuggling, headerTimeout   atomic.Uint64
	responseTimeout, upstreamErrors, passthrough           atomic.Uint64
	http2, http2Parsed, http2Errors, http2StreamsDropped   atomic.Uint64
}

// Proxy is the HTTP proxy with its listeners.
type Proxy struct {
	cfg Config
	log logrus.FieldLogger
	st  counters

	mu        sync.Mutex
	listeners map[string]*listener
	// warned are the namespaces whose listen failure was logged.
	warned map[string]bool
	closed bool
	conns  sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
}

// listener is the proxy's socket in one pod network namespace.
type listener struct {
	ns   Netns
	fd   int // the namespace, kept open to dial from it
	ln   net.Listener
	done chan struct{}
	// ctx ends the connections accepted here when the listener closes.
	ctx    context.Context
	cancel context.CancelFunc
}

// New validates the configuration.
func New(cfg Config, log logrus.FieldLogger) (*Proxy, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if log == nil {
		l := logrus.New()
		l.SetOutput(os.Stderr)
		log = l
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Proxy{cfg: cfg, log: log.WithField("component", "http-proxy"), listeners: map[string]*listener{}, warned: map[string]bool{}, ctx: ctx, cancel: cancel}, nil
}

// Port is the port the proxy listens on in each namespace.
func (p *Proxy) Port() uint16 { return p.cfg.Port }

// SetNetns makes the proxy listen in exactly these namespaces: it opens
// listeners in the new ones and closes those of namespaces no longer
// listed. A namespace that fails is logged and left out (its pods'
// governed connections are refused until a later call succeeds); the
// error joins every failure.
func (p *Proxy) SetNetns(nss []Netns) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("httpproxy: closed")
	}
	want := map[string]Netns{}
	for _, ns := range nss {
		want[ns.Key] = ns
	}
	var errs []error
	for key, ns := range want {
		if _, ok := p.listeners[key]; ok {
			continue
		}
		l, err := p.listen(ns)
		if err != nil {
			if !p.warned[key] {
				p.warned[key] = true
				p.log.WithError(err).WithField("netns", ns.Path).Warn("HTTP proxy cannot listen in a pod's network namespace; its governed connections are refused")
			}
			errs = append(errs, err)
			continue
		}
		delete(p.warned, key)
		p.listeners[key] = l
	}
	for key, l := range p.listeners {
		if _, ok := want[key]; !ok {
			l.close()
			delete(p.listeners, key)
		}
	}
	return errors.Join(errs...)
}

func (p *Proxy) listen(ns Netns) (*listener, error) {
	fd := -1
	if ns.Path != "" {
		var err error
		if fd, err = unix.Open(ns.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
			return nil, fmt.Errorf("httpproxy: open %s: %w", ns.Path, err)
		}
	}
	ln, err := listenIn(fd, "127.0.0.1:"+strconv.Itoa(int(p.cfg.Port)))
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("httpproxy: listen in %q: %w", ns.Path, err)
	}
	l := &listener{ns: ns, fd: fd, ln: ln, done: make(chan struct{})}
	l.ctx, l.cancel = context.WithCancel(p.ctx)
	go p.accept(l)
	return l, nil
}

func (l *listener) close() {
	l.ln.Close()
	<-l.done
	l.cancel()
	if l.fd >= 0 {
		unix.Close(l.fd)
	}
}

// Namespaces returns the keys of the namespaces listened in.
func (p *Proxy) Namespaces() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for k := range p.listeners {
		out = append(out, k)
	}
	return out
}

func (p *Proxy) accept(l *listener) {
	defer close(l.done)
	for {
		c, err := l.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		p.st.accepted.Add(1)
		p.conns.Add(1)
		go func() {
			defer p.conns.Done()
			p.handle(l, c.(*net.TCPConn))
		}()
	}
}

// Close closes the listeners and the connections in flight.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for key, l := range p.listeners {
		l.close()
		delete(p.listeners, key)
	}
	p.mu.Unlock()
	p.cancel()
	p.conns.Wait()
	return nil
}

// Stats returns the counters.
func (p *Proxy) Stats() Stats {
	s := &p.st
	return Stats{
		Accepted: s.accepted.Load(), UnknownSlot: s.unknownSlot.Load(), NoPod: s.noPod.Load(), PolicyDenied: s.policyDenied.Load(),
		DialFailed: s.dialFailed.Load(), Requests: s.requests.Load(), Forwarded: s.forwarded.Load(), Denied: s.denied.Load(),
		BadRequest: s.badRequest.Load(), HeaderTooLarge: s.headerTooLarge.Load(), Smuggling: s.smuggling.Load(),
		HeaderTimeout: s.headerTimeout.Load(), ResponseTimeout: s.responseTimeout.Load(), UpstreamErrors: s.upstreamErrors.Load(),
		Passthrough: s.passthrough.Load(), HTTP2: s.http2.Load(),
		HTTP2Parsed: s.http2Parsed.Load(), HTTP2Errors: s.http2Errors.Load(), HTTP2StreamsDropped: s.http2StreamsDropped.Load(),
	}
}

// slotOf reads the slot of a redirected connection from its peer address,
// 127.A.B.C.
func slotOf(a net.Addr) (uint32, bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return 0, false
	}
	ip := ta.IP.To4()
	if ip == nil || ip[0] != 127 {
		return 0, false
	}
	return uint32(ip[1])<<16 | uint32(ip[2])<<8 | uint32(ip[3]), true
}

// dial connects to the destination from the listener's namespace.
func (p *Proxy) dial(l *listener, dst netip.AddrPort) (*net.TCPConn, error) {
	return dialIn(l.ctx, l.fd, dst, p.cfg.DialTimeout)
}

// reset closes a connection with a RST, as a refused one looks.
func reset(c *net.TCPConn) {
	_ = c.SetLinger(0)
	c.Close()
}
