// Package httpproxy is the HTTP proxy of network policy: the connect
// programs of the datapath redirect the TCP connections of pods that
// rules.http governs (or that --http-visibility marks) to 127.0.0.1:Port in
// the pod's own network namespace, where the proxy listens. For each
// connection it reads the original destination and the client from the
// datapath (the slot in the peer address), connects to the destination
// from the same network namespace (so the server sees the pod's address and
// L3/L4 policy at the server applies as before), and then reads requests
// and responses with net/http, one pair at a time, so that keep-alive and
// pipelined requests pair in order. On visibility ports, HTTP/2 with prior
// knowledge (h2c, gRPC) is passed through unchanged while a copy of its
// frames is read with x/net/http2 to report each stream (http2.go).
//
// Requests rules.http refuses get 403 and a DROPPED flow naming the policy;
// allowed ones are forwarded and reported with their response. Limits on
// header size and timeouts bound what a hostile client can hold.
//
// Lifecycle: New(cfg, log) -> SetNetns(namespaces)... -> Close(). The
// package decides nothing about policy: the verdict of a request comes from
// networkpolicy (Engine.Check, HTTPFor); the kernel side is in datapath.
package httpproxy
