package testpods

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// routeLocal makes every address of a prefix local to the namespace (as
// `ip route add local PREFIX dev lo`): a server there accepts on all of
// them, so a test can hand out a fresh address per DNS answer.
func (c *nlConn) routeLocal(p netip.Prefix) error {
	idx, err := ifindex("lo")
	if err != nil {
		return err
	}
	b := rtmsg(p, unix.RT_TABLE_LOCAL, unix.RT_SCOPE_HOST, unix.RTN_LOCAL)
	b = append(b, nlAttr(unix.RTA_DST, p.Addr().AsSlice())...)
	b = append(b, nlU32(unix.RTA_OIF, uint32(idx))...)
	return c.do(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL, b)
}

// routeVia routes a prefix through a gateway out of a link, so that its
// addresses need one neighbour entry, the gateway's.
func (c *nlConn) routeVia(name string, p netip.Prefix, gw netip.Addr) error {
	idx, err := ifindex(name)
	if err != nil {
		return err
	}
	b := rtmsg(p, unix.RT_TABLE_MAIN, unix.RT_SCOPE_UNIVERSE, unix.RTN_UNICAST)
	b = append(b, nlAttr(unix.RTA_DST, p.Addr().AsSlice())...)
	b = append(b, nlAttr(unix.RTA_GATEWAY, gw.AsSlice())...)
	b = append(b, nlU32(unix.RTA_OIF, uint32(idx))...)
	return c.do(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL, b)
}

func rtmsg(p netip.Prefix, table, scope, typ uint8) []byte {
	b := make([]byte, unix.SizeofRtMsg)
	b[0] = unix.AF_INET
	if p.Addr().Is6() {
		b[0] = unix.AF_INET6
	}
	b[1] = uint8(p.Bits())
	b[4], b[5], b[6], b[7] = table, unix.RTPROT_BOOT, scope, typ
	return b
}

// dnsRoute runs route-local PREFIX and route-via DEV PREFIX GW.
func dnsRoute(verb string, args []string) string {
	c, err := dialNetlink()
	if err != nil {
		return errorTag + ": " + err.Error()
	}
	defer c.Close()
	switch {
	case verb == "route-local" && len(args) == 1:
		p, perr := netip.ParsePrefix(args[0])
		if perr != nil {
			return errorTag + ": " + perr.Error()
		}
		err = c.routeLocal(p)
	case verb == "route-via" && len(args) == 3:
		p, perr := netip.ParsePrefix(args[1])
		gw, gerr := netip.ParseAddr(args[2])
		if perr != nil || gerr != nil {
			return errorTag + ": route-via DEV PREFIX GW"
		}
		err = c.routeVia(args[0], p, gw)
	default:
		return errorTag + ": bad " + verb + " command"
	}
	if err != nil {
		return errorTag + ": " + verb + ": " + err.Error()
	}
	return "ok"
}

// lookup asks server for the A records of name over UDP, from a socket of
// its own, and returns the first address.
func lookup(server, name string) (netip.Addr, error) { return lookupNet("udp", server, name) }

// lookupNet is lookup over "udp" or "tcp".
func lookupNet(network, server, name string) (netip.Addr, error) {
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(name), mdns.TypeA)
	c := &mdns.Client{Net: network, Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, server)
	if err != nil {
		return netip.Addr{}, err
	}
	if r.Rcode != mdns.RcodeSuccess {
		return netip.Addr{}, fmt.Errorf("rcode %s", mdns.RcodeToString[r.Rcode])
	}
	for _, rr := range r.Answer {
		if a, ok := rr.(*mdns.A); ok {
			addr, _ := netip.AddrFromSlice(a.A.To4())
			return addr, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no A record for %s", name)
}

// dnsLoop: dnsloop SERVER:PORT NAME-FORMAT PORT START N [before] looks up
// the names START to START+N-1 (NAME-FORMAT with %d the index) and
// connects to each answer's first address on PORT right after the answer
// arrives. With before, it first connects to the address the name of
// index i has in the tests' tables (10.77.0.0/16 + i), which must be
// refused, so that every allowed connect is owed to its own lookup. It
// replies "lookups=N connects=N eperm=N before-eperm=N first-error=...".
func dnsLoop(args []string) string {
	if len(args) < 5 {
		return errorTag + ": dnsloop SERVER:PORT NAME-FORMAT PORT START N [before]"
	}
	port, _ := strconv.Atoi(args[2])
	start, _ := strconv.Atoi(args[3])
	n, _ := strconv.Atoi(args[4])
	before := len(args) > 5 && args[5] == "before"

	var lookups, connects, eperm, beforeEperm int
	firstErr := "none"
	note := func(what string, err error) {
		if firstErr == "none" {
			firstErr = strconv.Quote(what + ": " + err.Error())
		}
	}
	dial := func(addr netip.Addr) string {
		c, err := net.DialTimeout("tcp4", netip.AddrPortFrom(addr, uint16(port)).String(), 2*time.Second)
		if err != nil {
			return classify(err)
		}
		c.Close()
		return Allowed
	}
	for i := start; i < start+n; i++ {
		if before {
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], 10<<24|77<<16|uint32(i))
			if r := dial(netip.AddrFrom4(b)); r == EPERM {
				beforeEperm++
			} else {
				note("before lookup "+strconv.Itoa(i), fmt.Errorf("%s", r))
			}
		}
		addr, err := lookup(args[0], fmt.Sprintf(args[1], i))
		if err != nil {
			note("lookup "+strconv.Itoa(i), err)
			continue
		}
		lookups++
		switch r := dial(addr); r {
		case Allowed:
			connects++
		case EPERM:
			eperm++
			note("connect "+addr.String(), fmt.Errorf("%s", r))
		default:
			note("connect "+addr.String(), fmt.Errorf("%s", r))
		}
	}
	return fmt.Sprintf("lookups=%d connects=%d eperm=%d before-eperm=%d first-error=%s", lookups, connects, eperm, beforeEperm, firstErr)
}

// resolve: resolve SERVER:PORT NAME [tcp] replies with the first address
// of the answer.
func resolve(args []string) string {
	if len(args) != 2 && len(args) != 3 {
		return errorTag + ": resolve SERVER:PORT NAME [tcp]"
	}
	network := "udp"
	if len(args) == 3 && args[2] == "tcp" {
		network = "tcp"
	}
	addr, err := lookupNet(network, args[0], args[1])
	if err != nil {
		return errorTag + ": " + err.Error()
	}
	return addr.String()
}

// Resolve looks a name up at server from the endpoint (a UDP query from
// its own socket) and returns the first address, or the error text.
func (e *Endpoint) Resolve(server netip.AddrPort, name string) string {
	return e.do(fmt.Sprintf("resolve %s %s", server, name))
}

// ResolveTCP is Resolve over TCP.
func (e *Endpoint) ResolveTCP(server netip.AddrPort, name string) string {
	return e.do(fmt.Sprintf("resolve %s %s tcp", server, name))
}

// DNSLoop runs dnsloop in the endpoint (see dnsLoop).
func (e *Endpoint) DNSLoop(server netip.AddrPort, format string, port uint16, start, n int, before bool) string {
	cmd := fmt.Sprintf("dnsloop %s %s %d %d %d", server, format, port, start, n)
	if before {
		cmd += " before"
	}
	// Each name costs a lookup and up to two connects: about 3 ms on the
	// host and 30 ms on an emulated CPU of a loaded machine.
	return e.doWithin(cmd, 30*time.Second+time.Duration(n)*100*time.Millisecond)
}

// RouteLocal makes a prefix local to the endpoint's namespace.
func (e *Endpoint) RouteLocal(p netip.Prefix) string { return e.do("route-local " + p.String()) }

// RouteVia routes a prefix through a gateway in the endpoint's namespace.
func (e *Endpoint) RouteVia(p netip.Prefix, gw netip.Addr) string {
	return e.do(fmt.Sprintf("route-via eth0 %s %s", p, gw))
}

// dnsBench: dnsbench SERVER:PORT NAME N looks name up N times, each from a
// socket of its own, and replies with the mean nanoseconds per lookup.
func dnsBench(args []string) string {
	if len(args) != 3 {
		return errorTag + ": dnsbench SERVER:PORT NAME N"
	}
	n, _ := strconv.Atoi(args[2])
	start := time.Now()
	for i := 0; i < n; i++ {
		if _, err := lookup(args[0], args[1]); err != nil {
			return errorTag + ": " + err.Error()
		}
	}
	return strconv.FormatInt(time.Since(start).Nanoseconds()/int64(max(n, 1)), 10)
}

// DNSBench runs dnsbench in the endpoint and returns ns per lookup.
func (e *Endpoint) DNSBench(server netip.AddrPort, name string, n int) (int64, error) {
	r := e.do(fmt.Sprintf("dnsbench %s %s %d", server, name, n))
	v, err := strconv.ParseInt(r, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("dnsbench: %s", r)
	}
	return v, nil
}

// dnsServe: dns-serve ADDR:PORT TTL serves, over UDP and TCP, the tests'
// DNS table: n<i>.fqdn.test is 10.77.0.0/16 + i, other.test is 10.78.0.1,
// every other name NXDOMAIN. It stands in for dnsmasq where the tier has
// none (the VMs).
func dnsServe(args []string) string {
	if len(args) != 2 {
		return errorTag + ": dns-serve ADDR:PORT TTL"
	}
	ttl, _ := strconv.Atoi(args[1])
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, q *mdns.Msg) { w.WriteMsg(tableAnswer(q, ttl)) })
	for _, network := range []string{"udp", "tcp"} {
		started := make(chan error, 1)
		srv := &mdns.Server{Addr: args[0], Net: network, Handler: h, NotifyStartedFunc: func() { started <- nil }}
		go func() { started <- srv.ListenAndServe() }()
		if err := <-started; err != nil {
			return errorTag + ": dns-serve " + network + ": " + err.Error()
		}
	}
	return "ok"
}

// tableAnswer answers q from the tests' DNS table (see dnsServe).
func tableAnswer(q *mdns.Msg, ttl int) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	if len(q.Question) == 1 && q.Question[0].Qtype == mdns.TypeA {
		name := strings.ToLower(q.Question[0].Name)
		var ip netip.Addr
		var i int
		if name == "other.test." {
			ip = netip.MustParseAddr("10.78.0.1")
		} else if n, err := fmt.Sscanf(name, "n%d.fqdn.test.", &i); n == 1 && err == nil && i >= 0 && i < 1<<16 {
			ip = netip.AddrFrom4([4]byte{10, 77, byte(i >> 8), byte(i)})
		}
		if ip.IsValid() {
			m.Answer = append(m.Answer, &mdns.A{Hdr: mdns.RR_Header{Name: q.Question[0].Name, Rrtype: mdns.TypeA,
				Class: mdns.ClassINET, Ttl: uint32(ttl)}, A: ip.AsSlice()})
		} else {
			m.Rcode = mdns.RcodeNameError
		}
	}
	return m
}

// dnsServeSplit: dns-serve-split ADDR:PORT TTL serves the tests' DNS table
// over TCP only, writing each answer's two-byte length and the answer in
// two segments (TCP_NODELAY, a pause between), as some servers do.
func dnsServeSplit(args []string) string {
	if len(args) != 2 {
		return errorTag + ": dns-serve-split ADDR:PORT TTL"
	}
	ttl, _ := strconv.Atoi(args[1])
	ln, err := net.Listen("tcp", args[0])
	if err != nil {
		return errorTag + ": dns-serve-split: " + err.Error()
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serveSplit(c.(*net.TCPConn), ttl)
		}
	}()
	return "ok"
}

func serveSplit(c *net.TCPConn, ttl int) {
	defer c.Close()
	c.SetNoDelay(true)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	for {
		var pfx [2]byte
		if _, err := io.ReadFull(c, pfx[:]); err != nil {
			return
		}
		buf := make([]byte, int(pfx[0])<<8|int(pfx[1]))
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		q := new(mdns.Msg)
		if err := q.Unpack(buf); err != nil {
			return
		}
		out, err := tableAnswer(q, ttl).Pack()
		if err != nil {
			return
		}
		if _, err := c.Write([]byte{byte(len(out) >> 8), byte(len(out))}); err != nil {
			return
		}
		// The length leaves in a segment of its own before the answer is
		// written (the pause shapes the segments; nothing is timed).
		time.Sleep(20 * time.Millisecond)
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// ServeDNSSplit serves the tests' DNS table over TCP at addr, each answer's
// length in a segment of its own (see dnsServeSplit).
func (e *Endpoint) ServeDNSSplit(addr netip.AddrPort, ttl int) string {
	return e.do(fmt.Sprintf("dns-serve-split %s %d", addr, ttl))
}

// ServeDNS serves the tests' DNS table at addr (see dnsServe).
func (e *Endpoint) ServeDNS(addr netip.AddrPort, ttl int) string {
	return e.do(fmt.Sprintf("dns-serve %s %d", addr, ttl))
}
