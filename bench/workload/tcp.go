package workload

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// Serve accepts connections on addr and closes them (after reading what
// the peer sends, until EOF) until the listener fails. It is the far end of
// the connect workloads that run in another network namespace.
func Serve(addrs []string) error {
	errs := make(chan error, len(addrs))
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return err
		}
		go func() { errs <- acceptLoop(ln, true) }()
	}
	return <-errs
}

func acceptLoop(ln net.Listener, drain bool) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		if !drain {
			c.Close()
			continue
		}
		go func() {
			io.Copy(io.Discard, c)
			c.Close()
		}()
	}
}

// connect opens a TCP connection to addr with plain system calls and
// returns the socket and how long connect(2) took.
func connect(addr netip.AddrPort) (int, time.Duration, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, 0, err
	}
	sa := &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}
	start := time.Now()
	err = unix.Connect(fd, sa)
	d := time.Since(start)
	if err != nil {
		unix.Close(fd)
		return -1, d, err
	}
	return fd, d, nil
}

// TCPConnect connects to addr and closes the connection n times, after
// warmup untimed connections. With addr empty it listens on a loopback port
// of its own and accepts (and closes) every connection itself. Connect
// latencies are reported when latencies is set.
func TCPConnect(addr string, warmup, n int, latencies bool) (Result, error) {
	if addr == "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return Result{}, err
		}
		defer ln.Close()
		go acceptLoop(ln, false)
		addr = ln.Addr().String()
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		return Result{}, fmt.Errorf("address %q: want IPv4:port", addr)
	}
	for i := 0; i < warmup; i++ {
		fd, _, err := connect(ap)
		if err != nil {
			return Result{}, fmt.Errorf("warm-up connect to %s: %w", addr, err)
		}
		unix.Close(fd)
	}
	var lat []int64
	if latencies {
		lat = make([]int64, 0, n)
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		fd, d, err := connect(ap)
		if err != nil {
			return Result{}, fmt.Errorf("connect %d of %d to %s: %w", i+1, n, addr, err)
		}
		unix.Close(fd)
		if latencies {
			lat = append(lat, d.Nanoseconds())
		}
	}
	r := Result{Ops: int64(n), Seconds: since(start)}
	if latencies {
		slices.Sort(lat)
		r.Latencies = lat
	}
	return r, nil
}

// TCPBulk sends total bytes over one loopback TCP connection in writes of
// chunk bytes and reports the time until the receiver has read them all.
func TCPBulk(total int64, chunk int) (Result, error) {
	if chunk < 1 || total < int64(chunk) {
		return Result{}, fmt.Errorf("bulk of %d bytes in chunks of %d: need at least one chunk", total, chunk)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Result{}, err
	}
	defer ln.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer c.Close()
		buf := make([]byte, 256<<10)
		var n int64
		for {
			k, err := c.Read(buf)
			n += int64(k)
			if err != nil {
				break
			}
		}
		got <- n
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return Result{}, err
	}
	buf := make([]byte, chunk)
	start := time.Now()
	var sent int64
	for sent < total {
		k, err := c.Write(buf[:min(int64(chunk), total-sent)])
		sent += int64(k)
		if err != nil {
			c.Close()
			return Result{}, err
		}
	}
	c.Close()
	n := <-got
	secs := since(start)
	if n != total {
		return Result{}, fmt.Errorf("receiver read %d of %d bytes", n, total)
	}
	return Result{Ops: total, Bytes: total, Seconds: secs}, nil
}

// WaitVerdict connects to addr every interval until the outcome is want
// (denied: a connect failing with EPERM, the policy's verdict; allowed: a
// connect succeeding) or timeout passes, and reports the wall time of that
// first outcome in At. Connections that succeed are closed at once; a
// refused connect (the server not listening yet) is tried again; other
// errors end it.
func WaitVerdict(addr string, denied bool, interval, timeout time.Duration) (Result, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		return Result{}, fmt.Errorf("address %q: want IPv4:port", addr)
	}
	want := "allowed"
	if denied {
		want = "denied (EPERM)"
	}
	start := time.Now()
	var tries int64
	for time.Since(start) < timeout {
		tries++
		fd, _, err := connect(ap)
		now := time.Now()
		switch {
		case err == nil:
			unix.Close(fd)
			if !denied {
				return Result{Ops: tries, Seconds: now.Sub(start).Seconds(), At: now.UnixNano()}, nil
			}
		case errors.Is(err, unix.EPERM):
			if denied {
				return Result{Ops: tries, Seconds: now.Sub(start).Seconds(), At: now.UnixNano(), Errors: 1, Errno: unix.EPERM.Error()}, nil
			}
		case errors.Is(err, unix.ECONNREFUSED):
		default:
			return Result{}, fmt.Errorf("connect to %s: %w (waiting until %s)", addr, err, want)
		}
		time.Sleep(interval)
	}
	return Result{}, fmt.Errorf("connect to %s not %s within %v (%d tries)", addr, want, timeout, tries)
}
