// Package metrics is the small API the agent uses to expose its own
// Prometheus metrics next to the exporter's: a registry with the standard
// Go and process collectors (CPU, memory, file descriptors), and metrics
// whose values are read at scrape time from the component that owns them
// (process cache size, policies by state, BPF program statistics).
//
// Every metric name starts with "vigil_". This package owns no state of
// its own; the collect functions must be safe to call from the HTTP
// server's goroutines.
package metrics
