package tracingsensor

import (
	"context"
	"errors"
	"time"

	"github.com/cilium/ebpf"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/kprobes/abi"
	"github.com/vigilsec/vigil/process"
)

// Folding: the kernel reports the first of a run of identical calls of a
// process (same hook, selector, arguments, return value, action and process
// image) and counts the repeats in gen_folds (generic.bpf.c,
// gen_fold_call). The sweep reads the counts every FoldInterval and reports
// what each run gained since its last report as one event: a copy of the
// run's first event with Kprobe.Repeats. Counts are exact: the kernel only
// adds to them, a run is deleted only once its process image is gone (and
// a sweep later, for calls made while it exited), and whatever is pending
// is reported when the policy is unloaded and when the sweep stops.

// FoldInterval is how often the sweep reads the kernel's counts; a policy's
// rate limit (repeated-events: rate-limit=D) reports a run at most every D.
const FoldInterval = time.Second

// maxFoldHeads bounds the first events kept for the runs in progress.
const maxFoldHeads = 8192

// foldRun is what user space knows of a run.
type foldRun struct {
	head *event.Event // its first event; nil when evicted
	// reported is the kernel's count at the last report, lastKtime the
	// time of the last repeat it covered, lastReport when it was made.
	reported   uint64
	lastKtime  uint64
	lastReport time.Time
	// gone counts sweeps that found the run's process image gone.
	gone int
}

// folds holds the runs in progress. Its lock is the sensor's foldMu: the
// decoder adds heads from the reader's goroutine, the sweep reports.
type folds struct {
	runs  map[abi.GenFoldKey]*foldRun
	order []abi.GenFoldKey // heads in arrival order, for eviction
}

func newFolds() *folds { return &folds{runs: map[abi.GenFoldKey]*foldRun{}} }

// head records the first event of a run (a copy).
func (s *Sensor) foldHead(r *abi.GenEvent, ev *event.Event) {
	k := abi.GenFoldKey{Tgid: r.Hdr.Pid, HookId: r.HookId, ExecKtime: r.ExecKtime, Hash: r.FoldHash, Selector: uint32(r.Selector)}
	s.foldMu.Lock()
	defer s.foldMu.Unlock()
	f := s.folds
	run := f.runs[k]
	if run == nil {
		run = &foldRun{}
		f.runs[k] = run
	}
	run.head = ev.Clone()
	run.lastKtime = r.Hdr.Ktime
	run.lastReport = time.Now()
	f.order = append(f.order, k)
	if len(f.order) > maxFoldHeads {
		// Forget the oldest heads: their runs are still counted and
		// reported, with what the process and the hook tell.
		old := f.order[0]
		f.order = f.order[1:]
		if run := f.runs[old]; run != nil {
			run.head = nil
		}
	}
}

// RunFolds sweeps the kernel's counts of folded calls every FoldInterval
// and sends the reports to out, which may be used from this goroutine, until
// ctx ends; then it reports what is pending.
func (s *Sensor) RunFolds(ctx context.Context, out process.Sink) error {
	s.foldOut.Store(&out)
	defer s.foldOut.Store(nil)
	t := time.NewTicker(FoldInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.sweep(out, true, nil)
			return nil
		case <-t.C:
			s.sweep(out, false, nil)
		}
	}
}

// sweep reports the runs that gained repeats and whose policy's window has
// passed (every run when all is set), and deletes the runs of processes that
// are gone. With hooks set, it reports and deletes the runs of those hooks
// only (a policy being unloaded).
func (s *Sensor) sweep(out process.Sink, all bool, hooks map[uint32]bool) {
	m := s.gen.Map(abi.GenericMapGenFolds)
	procs := s.procs.Procs()
	now := time.Now()
	infos := *s.hooks.Load()

	var k abi.GenFoldKey
	var v abi.GenFold
	var done []abi.GenFoldKey
	s.foldMu.Lock()
	defer s.foldMu.Unlock()
	it := m.Iterate()
	for it.Next(&k, &v) {
		unloading := hooks != nil && hooks[k.HookId]
		if hooks != nil && !unloading {
			continue
		}
		run := s.folds.runs[k]
		if run == nil {
			run = &foldRun{lastReport: now}
			s.folds.runs[k] = run
		}
		info := infos[k.HookId]
		// A run whose process image is gone gets no more repeats once it
		// has exited; a sweep later it is deleted.
		var pe abi.ProcEntry
		if err := procs.Lookup(k.Tgid, &pe); err != nil || pe.ExecKtime != k.ExecKtime {
			run.gone++
		}
		window := FoldInterval
		if info != nil {
			window = info.policy.compiled.Policy.Repeats.Window
		}
		final := all || unloading || info == nil || run.gone > 1
		if v.Count > run.reported && (final || now.Sub(run.lastReport) >= window) {
			s.reportRun(out, k, v, run, info)
			run.reported, run.lastKtime, run.lastReport = v.Count, v.Last, now
		}
		if unloading || info == nil || run.gone > 1 {
			done = append(done, k)
		}
	}
	if err := it.Err(); err != nil && !errors.Is(err, ebpf.ErrIterationAborted) {
		s.log.WithError(err).Warn("read the folded calls")
	}
	for _, k := range done {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			s.log.WithError(err).Warn("delete a folded run")
		}
		delete(s.folds.runs, k)
	}
	// Heads of runs the kernel no longer has (deleted, or never stored
	// because the table was full).
	if len(s.folds.runs) > 2*maxFoldHeads {
		for key, run := range s.folds.runs {
			if run.gone > 0 {
				delete(s.folds.runs, key)
			}
		}
	}
}

// reportRun exports the repeats of a run since its last report.
func (s *Sensor) reportRun(out process.Sink, k abi.GenFoldKey, v abi.GenFold, run *foldRun, info *hookInfo) {
	clock := s.cache.Clock()
	first := v.First
	if run.reported > 0 {
		first = run.lastKtime
	}
	var ev *event.Event
	if run.head != nil {
		ev = run.head.Clone()
	} else {
		// The first event is no longer held: report the process and the
		// hook, without the arguments.
		proc, parent := s.cache.Get(k.Tgid)
		if proc == nil {
			proc = &event.Process{PID: k.Tgid, Flags: event.FlagNoParent}
		}
		kp := &event.Kprobe{Action: "KPROBE_ACTION_POST"}
		typ := event.TypeProcessKprobe
		if info != nil {
			typ = info.evType
			kp.FunctionName, kp.Mechanism, kp.PolicyName = info.function, string(info.mechanism), info.policy.Name
			kp.Message, kp.Tags = info.hook.Message, info.hook.Tags
		}
		ev = &event.Event{Type: typ, Process: proc, Parent: parent, Kprobe: kp}
	}
	ev.Time = clock.Wall(v.Last)
	ev.Kprobe.Repeats = &event.Repeats{Count: v.Count - run.reported, First: clock.Wall(first), Last: clock.Wall(v.Last)}
	out.Export(ev)
}

// flushFolds reports and forgets the runs of hooks being unloaded.
func (s *Sensor) flushFolds(ids []uint32) {
	out := s.foldOut.Load()
	if out == nil || len(ids) == 0 {
		return
	}
	hooks := make(map[uint32]bool, len(ids))
	for _, id := range ids {
		hooks[id] = true
	}
	s.sweep(*out, false, hooks)
}
