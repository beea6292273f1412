// Package exporter turns Vigil's internal events into JSON lines and delivers
// them: filters, redaction, rate limits, sinks (stdout, file, webhook, syslog)
// and the accounting of every event that could not be delivered.
//
// It is the only place where events become JSON. It must never block the
// kernel-to-sink path on a slow sink: each sink has its own bounded queue.
package exporter
