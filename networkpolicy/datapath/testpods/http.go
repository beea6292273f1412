package testpods

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

// httpClient keeps connections alive between requests of a helper, so
// that successive requests may share one.
var httpClient = sync.OnceValue(func() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 1}}
})

// httpServe serves the Death Star's landing API on PORT, in HTTP/1.1 and
// in HTTP/2 with prior knowledge (h2c): POST /v1/request-landing lands,
// anything else reaches the server and says what it was.
func httpServe(args []string) string {
	if len(args) != 1 {
		return errorTag + ": http-serve PORT"
	}
	l, err := net.Listen("tcp", ":"+args[0])
	if err != nil {
		return errorTag + ": " + err.Error()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/request-landing", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "Ship landed")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "Panic: deathstar exploded ("+r.Method+" "+r.URL.Path+")", http.StatusInternalServerError)
	})
	go http.Serve(l, h2c.NewHandler(mux, &http2.Server{}))
	return "ok"
}

// httpDo makes a request: "http METHOD URL TIMEOUT [new|h2]" replies
// "CODE first-line-of-body", or a probe result (eperm, refused, timeout)
// when no response came. With "new" it opens a connection of its own,
// with "h2" one of HTTP/2 with prior knowledge.
func httpDo(args []string) string {
	mode := ""
	if len(args) == 4 {
		mode, args = args[3], args[:3]
	}
	if len(args) != 3 || (mode != "" && mode != "new" && mode != "h2") {
		return errorTag + ": http METHOD URL TIMEOUT [new|h2]"
	}
	timeout, err := time.ParseDuration(args[2])
	if err != nil {
		return errorTag + ": " + err.Error()
	}
	req, err := http.NewRequest(args[0], args[1], nil)
	if err != nil {
		return errorTag + ": " + err.Error()
	}
	c := *httpClient()
	c.Timeout = timeout
	switch mode {
	case "new":
		c.Transport = &http.Transport{DisableKeepAlives: true}
	case "h2":
		tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}}
		defer tr.CloseIdleConnections()
		c.Transport = tr
	}
	resp, err := c.Do(req)
	if err != nil {
		var ne net.Error
		switch {
		case errors.Is(err, syscall.ECONNRESET):
			return "reset"
		case errors.As(err, &ne) && ne.Timeout():
			return Timeout
		}
		return classify(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	line, _, _ := strings.Cut(string(b), "\n")
	return fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(line))
}

// HTTPServe serves the landing API on port.
func (e *Endpoint) HTTPServe(port uint16) string { return e.do(fmt.Sprintf("http-serve %d", port)) }

// HTTP makes a request and returns "CODE body-line" or a probe result;
// successive requests may share a connection.
func (e *Endpoint) HTTP(method, url string, timeout time.Duration) string {
	return e.do(fmt.Sprintf("http %s %s %s", method, url, timeout))
}

// HTTPNew is HTTP on a connection of its own.
func (e *Endpoint) HTTPNew(method, url string, timeout time.Duration) string {
	return e.do(fmt.Sprintf("http %s %s %s new", method, url, timeout))
}

// httpBench makes N POST requests: "httpbench URL N keep|new" replies
// "P50_NS TOTAL_NS" (keep: one kept-alive connection; new: a connection
// per request).
func httpBench(args []string) string {
	if len(args) != 3 {
		return errorTag + ": httpbench URL N keep|new"
	}
	n, err := strconv.Atoi(args[1])
	if err != nil || n < 1 {
		return errorTag + ": N must be a positive number"
	}
	tr := &http.Transport{DisableKeepAlives: args[2] == "new", MaxIdleConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	lat := make([]time.Duration, n)
	start := time.Now()
	for i := range lat {
		t0 := time.Now()
		resp, err := c.Post(args[0], "text/plain", nil)
		if err != nil {
			return errorTag + ": " + err.Error()
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Sprintf("%s: status %d", errorTag, resp.StatusCode)
		}
		lat[i] = time.Since(t0)
	}
	total := time.Since(start)
	slices.Sort(lat)
	return fmt.Sprintf("%d %d", lat[n/2].Nanoseconds(), total.Nanoseconds())
}

// HTTP2 is HTTP over a new connection of HTTP/2 with prior knowledge.
func (e *Endpoint) HTTP2(method, url string, timeout time.Duration) string {
	return e.do(fmt.Sprintf("http %s %s %s h2", method, url, timeout))
}

// HTTPBench runs httpBench in the endpoint: the median request latency
// and the time of all n requests.
func (e *Endpoint) HTTPBench(url string, n int, keepAlive bool) (p50, total time.Duration, err error) {
	mode := "new"
	if keepAlive {
		mode = "keep"
	}
	out := e.doWithin(fmt.Sprintf("httpbench %s %d %s", url, n, mode), 10*time.Minute)
	var a, b int64
	if _, err := fmt.Sscanf(out, "%d %d", &a, &b); err != nil {
		return 0, 0, fmt.Errorf("httpbench: %s", out)
	}
	return time.Duration(a), time.Duration(b), nil
}
