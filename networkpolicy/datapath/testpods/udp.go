package testpods

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// UDP exchanges whose answer comes when the test says, so that it can
// arrive after a change of the datapath: a server that keeps its last peer
// and answers it on request, and client sockets that send once and read
// later.
type udpExchanges struct {
	mu      sync.Mutex
	servers map[string]*udpServer
	clients map[string]*net.UDPConn
}

type udpServer struct {
	conn *net.UDPConn
	mu   sync.Mutex
	peer netip.AddrPort
	// first is closed when the first datagram has been read.
	first chan struct{}
}

func newUDPExchanges() *udpExchanges {
	return &udpExchanges{servers: map[string]*udpServer{}, clients: map[string]*net.UDPConn{}}
}

// serve: udp-serve PORT listens and keeps the last sender.
func (u *udpExchanges) serve(args []string) string {
	if len(args) != 1 {
		return errorTag + ": udp-serve PORT"
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{Port: atoiOr0(args[0])})
	if err != nil {
		return errorTag + ": " + err.Error()
	}
	s := &udpServer{conn: pc, first: make(chan struct{})}
	u.mu.Lock()
	u.servers[args[0]] = s
	u.mu.Unlock()
	go func() {
		buf := make([]byte, 64)
		for {
			_, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			if !s.peer.IsValid() {
				close(s.first)
			}
			s.peer = from
			s.mu.Unlock()
		}
	}()
	return "ok"
}

// answer: udp-answer PORT sends to the last sender of the server on PORT,
// waiting up to 10 s for a first one.
func (u *udpExchanges) answer(args []string) string {
	if len(args) != 1 {
		return errorTag + ": udp-answer PORT"
	}
	u.mu.Lock()
	s := u.servers[args[0]]
	u.mu.Unlock()
	if s == nil {
		return errorTag + ": no udp-serve on " + args[0]
	}
	// A datagram sent just before may not have been read yet (a loaded
	// machine, an emulated CPU).
	select {
	case <-s.first:
	case <-time.After(10 * time.Second):
	}
	s.mu.Lock()
	peer := s.peer
	s.mu.Unlock()
	if !peer.IsValid() {
		return errorTag + ": nothing received on " + args[0]
	}
	if _, err := s.conn.WriteToUDPAddrPort([]byte("pong"), peer); err != nil {
		return classify(err)
	}
	return "ok"
}

// send: udp-send NAME ADDR:PORT sends a datagram from the client socket
// NAME (unconnected, created on first use).
func (u *udpExchanges) send(args []string) string {
	if len(args) != 2 {
		return errorTag + ": udp-send NAME ADDR:PORT"
	}
	ap, err := netip.ParseAddrPort(args[1])
	if err != nil {
		return errorTag + ": " + err.Error()
	}
	u.mu.Lock()
	c := u.clients[args[0]]
	if c == nil {
		if c, err = net.ListenUDP("udp", nil); err != nil {
			u.mu.Unlock()
			return errorTag + ": " + err.Error()
		}
		u.clients[args[0]] = c
	}
	u.mu.Unlock()
	if _, err := c.WriteToUDPAddrPort([]byte("ping"), ap); err != nil {
		return classify(err)
	}
	return "ok"
}

// read: udp-read NAME MS waits for a datagram on the client socket NAME.
func (u *udpExchanges) read(args []string) string {
	if len(args) != 2 {
		return errorTag + ": udp-read NAME MS"
	}
	u.mu.Lock()
	c := u.clients[args[0]]
	u.mu.Unlock()
	if c == nil {
		return errorTag + ": no udp socket " + args[0]
	}
	c.SetReadDeadline(time.Now().Add(time.Duration(atoiOr0(args[1])) * time.Millisecond))
	buf := make([]byte, 64)
	if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
		return classify(err)
	}
	return Allowed
}

func atoiOr0(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// UDPServe listens for datagrams on port and keeps the last sender, whom
// UDPAnswer answers.
func (e *Endpoint) UDPServe(port uint16) string { return e.do(fmt.Sprintf("udp-serve %d", port)) }

// UDPAnswer sends a datagram from port to the last sender there.
func (e *Endpoint) UDPAnswer(port uint16) string { return e.do(fmt.Sprintf("udp-answer %d", port)) }

// UDPSend sends a datagram to addr from the unconnected socket name.
func (e *Endpoint) UDPSend(name string, addr netip.AddrPort) string {
	return e.do(fmt.Sprintf("udp-send %s %s", name, addr))
}

// UDPRead waits up to timeout for a datagram on the socket name: Allowed
// when one came, Timeout when none did.
func (e *Endpoint) UDPRead(name string, timeout time.Duration) string {
	return e.do(fmt.Sprintf("udp-read %s %d", name, timeout.Milliseconds()))
}
