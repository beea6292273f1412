package agenttest

import (
	"fmt"
	"net"
	"os"
	"time"

	mdns "github.com/miekg/dns"
)

// dnsConnect is the helper "dns-connect SERVER NAME udp|tcp PORT": it asks
// SERVER (host:port) for the A record of NAME over the given transport,
// then connects over TCP to the first address of the answer at PORT and
// sends "hello", as an application resolving and connecting does.
func dnsConnect(args []string) (err error) {
	defer func() {
		if err != nil {
			fmt.Fprintln(os.Stderr, "dns-connect:", err)
		}
	}()
	if len(args) != 4 {
		return fmt.Errorf("dns-connect SERVER NAME udp|tcp PORT")
	}
	q := new(mdns.Msg)
	q.SetQuestion(mdns.Fqdn(args[1]), mdns.TypeA)
	c := &mdns.Client{Net: args[2], Timeout: 10 * time.Second}
	r, _, err := c.Exchange(q, args[0])
	if err != nil {
		return err
	}
	for _, rr := range r.Answer {
		if a, ok := rr.(*mdns.A); ok {
			conn, err := net.DialTimeout("tcp", net.JoinHostPort(a.A.String(), args[3]), 10*time.Second)
			if err != nil {
				return err
			}
			conn.Write([]byte("hello"))
			return conn.Close()
		}
	}
	return fmt.Errorf("no A record for %s: %s", args[1], r)
}
