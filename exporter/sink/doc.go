// Package sink delivers batches of JSON lines to one destination each: a
// writer such as stdout, a rotating file, an HTTP webhook (with an on-disk
// spool) or a syslog receiver.
//
// A sink is driven by one goroutine of the exporter, which hands it
// complete, newline-terminated lines. It never reports failure by blocking
// forever: lines it cannot deliver are reported through Hooks.Lost with a
// reason, and the sink keeps running so delivery resumes when the
// destination recovers.
package sink
