// Package workload holds the programs the benchmark harness times: each runs
// in a child process (`vigil-bench work NAME`), does a fixed amount of work
// of one kind, and reports how long the work took, measured inside the child
// so that starting the child is not part of the figure. Workloads touch only
// files they create, loopback, and addresses given to them (inside network
// namespaces the harness made).
package workload

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Result is what a workload reports on stdout, as one JSON object.
type Result struct {
	// Ops is how many operations ran (execs, opens, connections, bytes
	// for a bulk transfer).
	Ops int64 `json:"ops"`
	// Seconds is the wall time of the timed part.
	Seconds float64 `json:"seconds"`
	// Bytes is the payload moved, for throughput workloads.
	Bytes int64 `json:"bytes,omitempty"`
	// Latencies are per-operation times in nanoseconds, for workloads
	// that measure latency (sorted).
	Latencies []int64 `json:"latencies_ns,omitempty"`
	// Errors counts operations that failed in a way the workload
	// expects (for example a denied connect); Errno is the last one.
	Errors int64  `json:"errors,omitempty"`
	Errno  string `json:"errno,omitempty"`
	// At is the wall clock (Unix nanoseconds) of an event the workload
	// watches for, such as the first denied connect.
	At int64 `json:"at_unix_ns,omitempty"`
}

// Rate is Ops per second.
func (r Result) Rate() float64 {
	if r.Seconds <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Seconds
}

// Write prints r as one JSON line.
func (r Result) Write(w io.Writer) error {
	return json.NewEncoder(w).Encode(r)
}

// Parse reads the Result a child printed.
func Parse(out []byte) (Result, error) {
	var r Result
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("workload result %q: %w", string(out), err)
	}
	if r.Seconds <= 0 && r.At == 0 {
		return r, fmt.Errorf("workload result %q: no duration", string(out))
	}
	return r, nil
}

func since(t time.Time) float64 { return time.Since(t).Seconds() }
