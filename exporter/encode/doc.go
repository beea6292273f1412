// Package encode turns events into the JSON objects of Vigil's export stream
// and into one-line human summaries.
//
// Encoding appends to a caller-supplied []byte and does not allocate in the
// steady state; it never uses reflection. The JSON shape is the users'
// contract (docs/export.md): Tetragon's field names for process events,
// Hubble's for flows. This package must not filter, rate limit or deliver;
// package exporter does that.
package encode
