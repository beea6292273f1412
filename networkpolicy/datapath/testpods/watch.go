package testpods

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// A watch probes one destination over and over until it is stopped,
// counting the probes whose result is not the one wanted: a policy that
// is in force all along must never give another answer.
type watch struct {
	stop              chan struct{}
	done              chan struct{}
	probes, different atomic.Int64
	mu                sync.Mutex
	first             string
}

// helperWatches are the watches and held connections of one helper.
type helperWatches struct {
	mu      sync.Mutex
	watches map[string]*watch
	held    map[string]net.Conn
}

func newHelperWatches() *helperWatches {
	return &helperWatches{watches: map[string]*watch{}, held: map[string]net.Conn{}}
}

// start: watch NAME PROTO ADDR:PORT WANT. PROTO is a probe's (tcp,
// udp-connect: an exchange with an echo server) or connect: connect() of a
// UDP socket alone, which only the egress hook decides.
func (h *helperWatches) start(args []string) string {
	if len(args) != 4 {
		return errorTag + ": watch NAME PROTO ADDR:PORT WANT"
	}
	name, proto, addr, want := args[0], args[1], args[2], args[3]
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return errorTag + ": " + err.Error()
	}
	w := &watch{stop: make(chan struct{}), done: make(chan struct{})}
	h.mu.Lock()
	if h.watches[name] != nil {
		h.mu.Unlock()
		return errorTag + ": watch " + name + " exists"
	}
	h.watches[name] = w
	h.mu.Unlock()
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			var got string
			if proto == "connect" {
				got = connectOnly(ap)
			} else {
				got = probe([]string{proto, addr, "1000"})
			}
			w.probes.Add(1)
			if got != want {
				if w.different.Add(1) == 1 {
					w.mu.Lock()
					w.first = fmt.Sprintf("%s at %s", got, time.Now().Format("15:04:05.000000"))
					w.mu.Unlock()
				}
			}
		}
	}()
	return "ok"
}

// connectOnly connects a UDP socket (no packet is sent) and classifies the
// result.
func connectOnly(ap netip.AddrPort) string {
	family, sa := sockaddr(ap)
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return errorTag + ": " + err.Error()
	}
	defer unix.Close(fd)
	return classify(unix.Connect(fd, sa))
}

// end: unwatch NAME; replies "PROBES DIFFERENT FIRST-DIFFERENT".
func (h *helperWatches) end(args []string) string {
	if len(args) != 1 {
		return errorTag + ": unwatch NAME"
	}
	h.mu.Lock()
	w := h.watches[args[0]]
	delete(h.watches, args[0])
	h.mu.Unlock()
	if w == nil {
		return errorTag + ": no watch " + args[0]
	}
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	first := w.first
	if first == "" {
		first = "-"
	}
	return fmt.Sprintf("%d %d %s", w.probes.Load(), w.different.Load(), first)
}

// probes: watch-probes NAME replies how many probes a watch has made.
func (h *helperWatches) probes(args []string) string {
	if len(args) != 1 {
		return errorTag + ": watch-probes NAME"
	}
	h.mu.Lock()
	w := h.watches[args[0]]
	h.mu.Unlock()
	if w == nil {
		return errorTag + ": no watch " + args[0]
	}
	return strconv.FormatInt(w.probes.Load(), 10)
}

// hold: hold NAME ADDR:PORT opens a TCP connection and keeps it.
func (h *helperWatches) hold(args []string) string {
	if len(args) != 2 {
		return errorTag + ": hold NAME ADDR:PORT"
	}
	c, err := net.DialTimeout("tcp", args[1], 2*time.Second)
	if err != nil {
		return classify(err)
	}
	h.mu.Lock()
	h.held[args[0]] = c
	h.mu.Unlock()
	return h.exchange(args[:1])
}

// exchange: held NAME sends on a held connection and waits for the echo.
func (h *helperWatches) exchange(args []string) string {
	if len(args) != 1 {
		return errorTag + ": held NAME"
	}
	h.mu.Lock()
	c := h.held[args[0]]
	h.mu.Unlock()
	if c == nil {
		return errorTag + ": no held connection " + args[0]
	}
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		return classify(err)
	}
	buf := make([]byte, 4)
	if _, err := c.Read(buf); err != nil {
		return classify(err)
	}
	return Allowed
}

// listenEcho serves TCP on port, echoing on each connection until it is
// closed (for connections held across policy changes).
func listenEcho(port string) string {
	l, err := net.Listen("tcp", ":"+port)
	if err != nil {
		return errorTag + ": " + err.Error()
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	return "ok"
}

// Watch starts probing addr with proto ("tcp", "udp-connect", or
// "connect": a UDP connect() alone) over and over in the background,
// counting the results that are not want.
func (e *Endpoint) Watch(name, proto string, addr netip.AddrPort, want string) string {
	return e.do(fmt.Sprintf("watch %s %s %s %s", name, proto, addr, want))
}

// Unwatch stops a watch and returns how many probes it made and how many
// of them did not get the wanted result (with the first such one).
func (e *Endpoint) Unwatch(name string) (probes, different int, first string, err error) {
	r := e.do("unwatch " + name)
	f := strings.SplitN(r, " ", 3)
	if len(f) != 3 {
		return 0, 0, "", fmt.Errorf("unwatch %s: %s", name, r)
	}
	if probes, err = strconv.Atoi(f[0]); err == nil {
		different, err = strconv.Atoi(f[1])
	}
	if err != nil {
		return 0, 0, "", fmt.Errorf("unwatch %s: %s", name, r)
	}
	return probes, different, f[2], nil
}

// WatchProbes returns how many probes a watch has made so far (-1 when
// the helper does not answer with a number).
func (e *Endpoint) WatchProbes(name string) int {
	n, err := strconv.Atoi(e.do("watch-probes " + name))
	if err != nil {
		return -1
	}
	return n
}

// Hold opens a TCP connection to addr (a port served by ListenEcho) and
// keeps it open; Held exchanges data on it.
func (e *Endpoint) Hold(name string, addr netip.AddrPort) string {
	return e.do(fmt.Sprintf("hold %s %s", name, addr))
}

// Held sends on a held connection and waits for the echo.
func (e *Endpoint) Held(name string) string { return e.do("held " + name) }

// ListenEcho serves TCP on port, echoing until the peer closes.
func (e *Endpoint) ListenEcho(port uint16) string { return e.do(fmt.Sprintf("listen-echo %d", port)) }
