package event

import "time"

// HTTP is the layer 7 part of a flow the HTTP proxy reports: one request
// and its response (Hubble's flow.l7.http with flow.l7.latency_ns).
type HTTP struct {
	Method string
	// URL is the request as Hubble shows it: http://host/path?query.
	URL      string
	Protocol string // HTTP/1.1
	// Code is the response status; 0 when no response came (the
	// upstream failed or did not answer in time).
	Code uint32
	// Latency is from the end of the request headers to the response
	// headers.
	Latency time.Duration
	// RequestBytes and ResponseBytes are the body sizes forwarded (-1:
	// not known, as for a refused request's body).
	RequestBytes, ResponseBytes int64
	// Headers are the request headers reported (only those configured).
	Headers []HTTPHeader
}

// HTTPHeader is one reported header.
type HTTPHeader struct {
	Key, Value string
}

// L7Type is Hubble's flow.l7.type: RESPONSE for a request and its
// response, REQUEST for a request that got none.
func (h *HTTP) L7Type() string {
	if h.Code == 0 {
		return "REQUEST"
	}
	return "RESPONSE"
}
