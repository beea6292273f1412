// Package filter holds the export stream's shaping rules, compiled from
// user input: allow and deny lists with Tetragon's filter semantics, field
// masks that keep or drop parts of each JSON object, and redaction of
// secrets in process arguments.
//
// Compiled values keep small caches keyed by the identity of the strings
// they see (process-cache entries are immutable and shared by many events),
// so they are not safe for concurrent use; the exporter serialises calls.
// This package decides; it never encodes or delivers.
package filter
