package httpproxy

import (
	"bufio"
	"fmt"
	"net/http"
	"testing"
)

// BenchmarkProxyLoopback is the proxy's own cost per request on a kept-alive
// connection, without the kernel: client, proxy and server on loopback.
func BenchmarkProxyLoopback(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "Ship landed") })
	ev := newEnv(b, h, false, Config{})
	go func() {
		for range ev.flowCh {
		}
	}()
	c := ev.dial(0x0201)
	br := bufio.NewReader(c)
	b.ReportAllocs()
	for b.Loop() {
		fmt.Fprintf(c, "POST /v1/request-landing HTTP/1.1\r\nHost: deathstar\r\nContent-Length: 0\r\n\r\n")
		if code, _ := readResponse(b, br, "POST"); code != 200 {
			b.Fatalf("code %d", code)
		}
	}
}
