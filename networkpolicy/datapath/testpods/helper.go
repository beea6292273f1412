package testpods

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// helperMain serves commands "ID VERB ARGS..." from in, one reply line
// "ID RESULT" each, concurrently.
func helperMain(in io.Reader, out io.Writer) int {
	var mu sync.Mutex
	reply := func(id, s string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, "%s %s\n", id, s)
	}
	sc := bufio.NewScanner(in)
	var wg sync.WaitGroup
	watches := newHelperWatches()
	udp := newUDPExchanges()
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		id, verb, args := f[0], f[1], f[2:]
		switch verb {
		case "hello":
			reply(id, "ok")
		case "bridge", "veth", "up", "addr", "route":
			reply(id, netConfig(verb, args))
		case "route-local", "route-via":
			reply(id, dnsRoute(verb, args))
		case "resolve":
			reply(id, resolve(args))
		case "dnsloop":
			reply(id, dnsLoop(args))
		case "dnsbench":
			reply(id, dnsBench(args))
		case "dns-serve":
			reply(id, dnsServe(args))
		case "dns-serve-split":
			reply(id, dnsServeSplit(args))
		case "listen":
			reply(id, listen(args))
		case "probe":
			wg.Add(1)
			go func() {
				defer wg.Done()
				reply(id, probe(args))
			}()
		case "bench":
			reply(id, bench(args))
		case "httpbench":
			reply(id, httpBench(args))
		case "http-serve":
			reply(id, httpServe(args))
		case "http":
			wg.Add(1)
			go func() {
				defer wg.Done()
				reply(id, httpDo(args))
			}()
		case "watch":
			reply(id, watches.start(args))
		case "unwatch":
			reply(id, watches.end(args))
		case "watch-probes":
			reply(id, watches.probes(args))
		case "udp-serve":
			reply(id, udp.serve(args))
		case "udp-answer":
			reply(id, udp.answer(args))
		case "udp-send":
			reply(id, udp.send(args))
		case "udp-read":
			reply(id, udp.read(args))
		case "hold":
			reply(id, watches.hold(args))
		case "held":
			reply(id, watches.exchange(args))
		case "listen-echo":
			if len(args) != 1 {
				reply(id, errorTag+": listen-echo PORT")
				continue
			}
			reply(id, listenEcho(args[0]))
		default:
			reply(id, errorTag+": unknown command "+verb)
		}
	}
	wg.Wait()
	return 0
}

func listen(args []string) string {
	if len(args) != 2 {
		return errorTag + ": listen PROTO PORT"
	}
	port := args[1]
	switch args[0] {
	case "tcp":
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
				go echoStream(c)
			}
		}()
	case "udp":
		pc, err := net.ListenPacket("udp", ":"+port)
		if err != nil {
			return errorTag + ": " + err.Error()
		}
		go func() {
			buf := make([]byte, 512)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo(buf[:n], from)
			}
		}()
	case "sctp":
		n, _ := strconv.Atoi(port)
		if err := listenSCTP(n); err != nil {
			if errors.Is(err, errNoSCTP) {
				return NoSCTP
			}
			return errorTag + ": " + err.Error()
		}
	default:
		return errorTag + ": unknown protocol " + args[0]
	}
	return "ok"
}

func echoStream(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err == nil {
		c.Write(buf[:n])
	}
}

func classify(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return Allowed
	case errors.Is(err, syscall.EPERM):
		return EPERM
	case errors.Is(err, syscall.ECONNREFUSED):
		return Refused
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.ETIMEDOUT):
		return Timeout
	}
	return errorTag + ": " + err.Error()
}

func probe(args []string) string {
	if len(args) != 3 {
		return errorTag + ": probe PROTO ADDR:PORT MS"
	}
	ap, err := netip.ParseAddrPort(args[1])
	if err != nil {
		return errorTag + ": " + err.Error()
	}
	ms, _ := strconv.Atoi(args[2])
	timeout := time.Duration(ms) * time.Millisecond
	fam := "4"
	if ap.Addr().Is6() {
		fam = "6"
	}
	deadline := time.Now().Add(timeout)
	msg := []byte("ping")
	buf := make([]byte, 64)
	switch args[0] {
	case "tcp", "udp-connect":
		network := "tcp" + fam
		if args[0] == "udp-connect" {
			network = "udp" + fam
		}
		c, err := net.DialTimeout(network, ap.String(), timeout)
		if err != nil {
			return classify(err)
		}
		defer c.Close()
		c.SetDeadline(deadline)
		if _, err := c.Write(msg); err != nil {
			return classify(err)
		}
		if _, err := c.Read(buf); err != nil {
			return classify(err)
		}
		return Allowed
	case "udp":
		pc, err := net.ListenUDP("udp"+fam, nil)
		if err != nil {
			return errorTag + ": " + err.Error()
		}
		defer pc.Close()
		pc.SetDeadline(deadline)
		if _, err := pc.WriteToUDPAddrPort(msg, ap); err != nil {
			return classify(err)
		}
		if _, _, err := pc.ReadFromUDPAddrPort(buf); err != nil {
			return classify(err)
		}
		return Allowed
	case "sctp":
		return probeSCTP(ap, timeout)
	}
	return errorTag + ": unknown protocol " + args[0]
}

func sockaddr(ap netip.AddrPort) (int, unix.Sockaddr) {
	if ap.Addr().Is4() {
		return unix.AF_INET, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return unix.AF_INET6, &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

func sctpSocket(family int) (int, error) {
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_SCTP)
	if errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.ESOCKTNOSUPPORT) {
		return -1, errNoSCTP
	}
	return fd, err
}

func listenSCTP(port int) error {
	fd, err := sctpSocket(unix.AF_INET)
	if err != nil {
		return err
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port}); err != nil {
		unix.Close(fd)
		return err
	}
	if err := unix.Listen(fd, 64); err != nil {
		unix.Close(fd)
		return err
	}
	go func() {
		for {
			nfd, _, err := unix.Accept(fd)
			if err != nil {
				return
			}
			go func() {
				defer unix.Close(nfd)
				buf := make([]byte, 64)
				tv := unix.NsecToTimeval(int64(5 * time.Second))
				unix.SetsockoptTimeval(nfd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
				if n, err := unix.Read(nfd, buf); err == nil && n > 0 {
					unix.Write(nfd, buf[:n])
				}
			}()
		}
	}()
	return nil
}

func probeSCTP(ap netip.AddrPort, timeout time.Duration) string {
	family, sa := sockaddr(ap)
	fd, err := sctpSocket(family)
	if errors.Is(err, errNoSCTP) {
		return NoSCTP
	}
	if err != nil {
		return errorTag + ": " + err.Error()
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(timeout.Nanoseconds())
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	if err := unix.Connect(fd, sa); err != nil {
		if errors.Is(err, unix.EINPROGRESS) {
			return Timeout
		}
		return classify(err)
	}
	if _, err := unix.Write(fd, []byte("ping")); err != nil {
		return classify(err)
	}
	buf := make([]byte, 64)
	if _, err := unix.Read(fd, buf); err != nil {
		return classify(err)
	}
	return Allowed
}

// bench connects N fresh UDP sockets to ADDR:PORT (no packet is sent: the
// cost is the socket calls and the connect hook) and replies with the mean
// nanoseconds per connect() and the result of the last one.
func bench(args []string) string {
	if len(args) != 2 {
		return errorTag + ": bench ADDR:PORT N"
	}
	ap, err := netip.ParseAddrPort(args[0])
	if err != nil {
		return errorTag + ": " + err.Error()
	}
	n, _ := strconv.Atoi(args[1])
	family, sa := sockaddr(ap)
	var last error
	var el time.Duration
	fds := make([]int, 0, 512)
	for done := 0; done < n; {
		fds = fds[:0]
		for len(fds) < cap(fds) && done+len(fds) < n {
			fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return errorTag + ": " + err.Error()
			}
			fds = append(fds, fd)
		}
		start := time.Now()
		for _, fd := range fds {
			last = unix.Connect(fd, sa)
		}
		el += time.Since(start)
		for _, fd := range fds {
			unix.Close(fd)
		}
		done += len(fds)
	}
	return fmt.Sprintf("%d %s", el.Nanoseconds()/int64(max(n, 1)), classify(last))
}

// netConfig runs one rtnetlink command in the helper's namespace.
func netConfig(verb string, args []string) string {
	c, err := dialNetlink()
	if err != nil {
		return errorTag + ": " + err.Error()
	}
	defer c.Close()
	switch {
	case verb == "bridge" && len(args) == 1:
		err = c.linkBridge(args[0])
	case verb == "veth" && len(args) == 3:
		pid, perr := strconv.Atoi(args[2])
		if perr != nil {
			return errorTag + ": " + perr.Error()
		}
		err = c.linkVeth(args[0], args[1], pid)
	case verb == "up" && len(args) == 1:
		err = c.linkUp(args[0], "")
	case verb == "up" && len(args) == 2:
		err = c.linkUp(args[0], args[1])
	case verb == "addr" && len(args) == 2:
		ip, perr := netip.ParseAddr(args[1])
		if perr != nil {
			return errorTag + ": " + perr.Error()
		}
		err = c.addrAdd(args[0], ip)
	case verb == "route" && len(args) == 2:
		err = c.routeDefault(args[0], args[1] == "6")
	default:
		return errorTag + ": bad " + verb + " command"
	}
	if err != nil {
		return errorTag + ": " + verb + " " + strings.Join(args, " ") + ": " + err.Error()
	}
	return "ok"
}
