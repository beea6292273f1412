// Package exporter turns Vigil's internal events into JSON lines and delivers
// them: filters, redaction, rate limits, sinks (stdout, file, webhook, syslog)
// and the accounting of every event that could not be delivered.
//
// It is the only place where events become JSON. It must never block the
// kernel-to-sink path on a slow sink: each sink has its own bounded queue.
//
// Lifecycle: New opens the sinks, Run drives them until its context ends and
// then flushes; Export may be called before Run (lines wait in the bounded
// queues) and from several goroutines. Subpackages: encode (JSON and the
// one-line text format), filter (allow/deny lists, field masks, redaction),
// sink (destinations), spool (the webhook's disk-backed queue), metrics
// (the agent's own Prometheus metrics), tetragonschema (Tetragon's event
// schema and a strict checker of lines against it, for tests).
package exporter
