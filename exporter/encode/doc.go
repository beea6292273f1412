// Package encode turns events into the JSON objects of Vigil's export stream
// and into one-line human summaries.
//
// Encoding appends to a caller-supplied []byte and does not allocate in the
// steady state; it never uses reflection. The JSON shape is the users'
// contract (docs/export.md): Tetragon's field names, types and spellings for
// everything Tetragon's schema has, Hubble's for flows. FormatTetragon
// writes only what Tetragon's schema has; tetragon_test.go lists Vigil's
// own members and tests both formats against the schema. This package must not filter, rate limit or deliver;
// package exporter does that.
package encode
