package flows

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/process"
)

// Folding: a process that opens connection after connection to the same
// service (a health check, a client without keep-alive, a scan of one
// port) makes flows that differ only in their ephemeral port and time. The
// first of a run is reported as usual; the ones that follow it (same process
// image, direction, protocol, phase, local and remote address, and the
// service's port: the remote port of an egress flow, the local port of an
// ingress one) are counted, and once per window the run's count is reported
// as one flow event with `count`, the ports and time of its last flow and
// the sums of the byte and packet counters of the flows it stands for. A run
// that gains nothing for a window ends; its next flow is reported at once.
// Counts are exact: the head plus the reports add up to every flow seen,
// and what is pending is reported when the sweep stops (flows decoded after
// that are reported one by one).

// DefaultFoldWindow is how long a run of repeated flows is counted before
// its count is reported.
const DefaultFoldWindow = time.Second

// maxFoldRuns bounds the runs counted at once; past it, new runs are not
// folded (their flows are reported one by one, counted as table full).
const maxFoldRuns = 16384

// ParseRepeats parses the value of --flow-repeats: fold (the default
// window), rate-limit=DURATION (1s to 24h) or report-all (no folding: a
// window of zero).
func ParseRepeats(v string) (time.Duration, error) {
	switch {
	case v == "fold":
		return DefaultFoldWindow, nil
	case v == "report-all":
		return 0, nil
	case strings.HasPrefix(v, "rate-limit="):
		d, err := time.ParseDuration(strings.TrimPrefix(v, "rate-limit="))
		if err != nil || d < time.Second || d > 24*time.Hour {
			return 0, fmt.Errorf("%q: the rate limit is a duration between 1s and 24h, such as rate-limit=1m", v)
		}
		return d, nil
	}
	return 0, fmt.Errorf("%q: want fold, report-all or rate-limit=DURATION", v)
}

// foldKey is what makes flows the same run.
type foldKey struct {
	pid uint32
	// proc is the process cache's entry: immutable, replaced on exec,
	// so it names the process image.
	proc                       *event.Process
	phase, direction, protocol uint8
	local, remote              netip.Addr
	port                       uint16
}

// foldRun is a run of repeated flows: what it gained since its last report.
type foldRun struct {
	n            uint64
	flow         event.Flow
	time         time.Time
	proc, parent *event.Process
	lastReport   time.Time
}

// Folds counts repeated flows. The decoder adds from the reader's
// goroutine; Run reports from its own.
type Folds struct {
	window time.Duration
	now    func() time.Time
	// refresh, when set, updates a report before it is sent (from Run's
	// goroutine).
	refresh func(ev *event.Event)

	mu     sync.Mutex
	runs   map[foldKey]*foldRun
	closed bool

	folded, full atomic.Uint64
}

// NewFolds returns the fold table of a window (DefaultFoldWindow, or a
// rate limit); a zero window folds nothing.
func NewFolds(window time.Duration) *Folds {
	return &Folds{window: window, now: time.Now, runs: map[foldKey]*foldRun{}}
}

// Folded is the number of flows counted into a run instead of reported on
// their own.
func (f *Folds) Folded() uint64 { return f.folded.Load() }

// TableFull is the number of flows reported on their own because the table
// of runs was full.
func (f *Folds) TableFull() uint64 { return f.full.Load() }

// add counts ev (whose flow is fl) into its run and says whether it was
// folded; a flow that starts a run is not, and is reported by the caller.
func (f *Folds) add(ev *event.Event, fl *event.Flow, pid uint32) bool {
	if f == nil || f.window <= 0 {
		return false
	}
	k := foldKey{pid: pid, proc: ev.Process, phase: uint8(fl.Phase), direction: uint8(fl.Direction), protocol: fl.Protocol}
	// The destination port is the service's: the remote one of an
	// egress flow, the local one of an ingress flow.
	k.local, k.remote, k.port = fl.Source, fl.Destination, fl.DestinationPort
	if fl.Direction == event.DirectionIngress {
		k.local, k.remote = fl.Destination, fl.Source
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	run := f.runs[k]
	if run == nil {
		if len(f.runs) >= maxFoldRuns {
			f.full.Add(1)
			return false
		}
		f.runs[k] = &foldRun{lastReport: f.now()}
		return false
	}
	if run.n == 0 {
		run.flow = *fl
	} else {
		sent, recv := run.flow.BytesSent+fl.BytesSent, run.flow.BytesReceived+fl.BytesReceived
		psent, precv := run.flow.PacketsSent+fl.PacketsSent, run.flow.PacketsReceived+fl.PacketsReceived
		run.flow = *fl
		run.flow.BytesSent, run.flow.BytesReceived = sent, recv
		run.flow.PacketsSent, run.flow.PacketsReceived = psent, precv
	}
	run.n++
	run.time, run.proc, run.parent = ev.Time, ev.Process, ev.Parent
	f.folded.Add(1)
	return true
}

// Run reports the runs every second (each once its window has passed) to
// out, which may be used from this goroutine, until ctx ends; then it
// reports what is pending and folds no more.
func (f *Folds) Run(ctx context.Context, out process.Sink) error {
	if f == nil || f.window <= 0 {
		return nil
	}
	t := time.NewTicker(min(f.window, time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			f.sweep(out, true)
			return nil
		case <-t.C:
			f.sweep(out, false)
		}
	}
}

// sweep reports the runs that gained flows and whose window has passed
// (every run with all set, which also ends folding), and forgets the runs
// that gained nothing for a window.
func (f *Folds) sweep(out process.Sink, all bool) {
	now := f.now()
	var reports []event.Event
	f.mu.Lock()
	if all {
		f.closed = true
	}
	for k, run := range f.runs {
		due := all || now.Sub(run.lastReport) >= f.window
		if !due {
			continue
		}
		if run.n == 0 {
			delete(f.runs, k)
			continue
		}
		fl := run.flow
		fl.Count = run.n
		reports = append(reports, event.Event{Type: event.TypeFlow, Time: run.time, Process: run.proc, Parent: run.parent, Flow: &fl})
		run.n, run.flow, run.proc, run.parent = 0, event.Flow{}, nil, nil
		run.lastReport = now
		if all {
			delete(f.runs, k)
		}
	}
	f.mu.Unlock()
	slices.SortFunc(reports, func(a, b event.Event) int { return a.Time.Compare(b.Time) })
	for i := range reports {
		if f.refresh != nil {
			f.refresh(&reports[i])
		}
		out.Export(&reports[i])
	}
}
