package pipeline

import (
	"context"
	"time"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/exporter"
	"github.com/vigilsec/vigil/observer"
)

// Stage takes one event. It must not keep the event after returning (a
// stage that needs it later clones it).
type Stage interface {
	Export(ev *event.Event)
}

// Exporter is the last stage: it encodes events and hands them to the
// sinks, and counts events lost before they reached it.
type Exporter interface {
	Stage
	ReportLost(reason string, n uint64)
}

// Batcher is an exporter that can take the events of a batch without
// waking its sinks for each, and wake them at the end of the batch.
type Batcher interface {
	ExportBatched(ev *event.Event)
	Flush()
}

// Detector is the detection stage: it takes the events its rules consume
// without blocking and evaluates them on its own goroutine (Run).
type Detector interface {
	Submit(ev *event.Event)
	Run(ctx context.Context) error
}

// Config configures the stages between the decoders and the exporter.
type Config struct {
	// HoldTimeout bounds how long the events of a new container wait for
	// its pod; zero sends them at once.
	HoldTimeout time.Duration
	// HoldMax bounds how many events may wait.
	HoldMax int
}

// Pipeline is the route of every record of the shared ring buffer: read,
// decode (the sensors' routes), hold, detect, export.
type Pipeline struct {
	read   *observer.Observer
	hold   *holder
	async  Stage
	detect Detector
	export Exporter
	holdT  time.Duration
	losses []kernelLosses
	// refusedSeen is the read stage's count of undecodable records
	// already reported.
	refusedSeen uint64
	log         logrus.FieldLogger
}

// kernelLosses is a count of records the kernel could not deliver.
type kernelLosses struct {
	read func() (uint64, error)
	seen uint64
}

// New builds the pipeline of the ring buffer ring, whose programs share
// state (their ring_reader map: wakeup request and loss counters) with the
// reader. pods tells the hold stage which cgroups still wait for their pod;
// detect may be nil (no rules). A nil ring makes a pipeline fed by Dispatch
// only.
func New(cfg Config, ring, state *ebpf.Map, pods Pods, detect Detector, export Exporter, reg prometheus.Registerer, log logrus.FieldLogger) (*Pipeline, error) {
	read := observer.NewDispatcher(log.WithField("stage", "read"))
	if ring != nil {
		var err error
		if read, err = observer.New(ring, state, log.WithField("stage", "read")); err != nil {
			return nil, err
		}
	}
	// The reader's events go to the sinks in batches, woken when the
	// ring is drained; held events released from another goroutine wake
	// them at once.
	var batched, now Stage = export, export
	if b, ok := export.(Batcher); ok {
		batched = batchedExport{b}
		read.OnIdle(b.Flush)
	}
	if detect != nil {
		batched, now = tee{detect: detect, next: batched}, tee{detect: detect, next: now}
	}
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "vigil_ring_records_total", Help: "Records read from the shared event ring buffer.",
	}, func() float64 { return float64(read.Stats().Records) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "vigil_ring_records_undecodable_total", Help: "Records of the shared ring buffer no decoder could turn into an event (also counted as lost, reason undecodable).",
	}, func() float64 { s := read.Stats(); return float64(s.Unknown + s.Errors) }))
	if state != nil {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "vigil_ring_reader_sleeps_total", Help: "Times the ring buffer's reader slept until a program woke it (the ring was idle).",
		}, func() float64 { return float64(read.Stats().Sleeps) }))
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "vigil_ring_reader_batches_total", Help: "Batches of records the ring buffer's reader read before finding the ring empty.",
		}, func() float64 { return float64(read.Stats().Batches) }))
	}
	p := &Pipeline{
		read:   read,
		hold:   newHolder(batched, now, pods, cfg.HoldTimeout, cfg.HoldMax, reg),
		async:  now,
		detect: detect,
		export: export,
		holdT:  cfg.HoldTimeout,
		log:    log,
	}
	if state != nil {
		p.KernelLosses(read.Lost)
	}
	return p, nil
}

// Route sends the records of each route's opcode to its decoder. Register
// every route before Run.
func (p *Pipeline) Route(routes ...observer.Route) { p.read.Route(routes...) }

// Decoded is where decoders send the events they make: the hold stage,
// then detect and export.
func (p *Pipeline) Decoded() Stage { return p.hold }

// Async is where events made away from the reader's goroutine go (reports
// of folded calls, for example): detect and export, waking the sinks at
// once. It may be used from any goroutine.
func (p *Pipeline) Async() Stage { return p.async }

// PodKnown releases the events held for cgroup cg, with its pod (nil when
// the cgroup turned out to have none).
func (p *Pipeline) PodKnown(cg uint64, pod *event.Pod) { p.hold.releaseCgroup(cg, pod) }

// KernelLosses adds a counter of records the kernel could not reserve in a
// ring buffer (a running total); Run reports its increases as lost events.
func (p *Pipeline) KernelLosses(read func() (uint64, error)) {
	p.losses = append(p.losses, kernelLosses{read: read})
}

// Dispatch routes one record as the read stage does, for replays of
// recorded kernel records.
func (p *Pipeline) Dispatch(rec []byte) { p.read.Dispatch(rec) }

// Stats are the read stage's counters.
func (p *Pipeline) Stats() observer.Stats { return p.read.Stats() }

// Run reads and routes records, runs the detection stage, releases held
// events whose wait ended and reports kernel losses, until ctx ends. It
// drains the ring buffer before returning and reports the last losses.
func (p *Pipeline) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.read.Run(gctx) })
	if p.detect != nil {
		g.Go(func() error { return p.detect.Run(gctx) })
	}
	g.Go(func() error { return p.tick(gctx) })
	err := g.Wait()
	p.reportLosses()
	return err
}

// tick releases expired holds, checking only while events are held, and
// reports the losses every second (reading shared memory: no system call).
func (p *Pipeline) tick(ctx context.Context) error {
	holdTick := max(p.holdT/4, 10*time.Millisecond)
	lossTick := time.NewTicker(time.Second)
	defer lossTick.Stop()
	var hold *time.Ticker
	var holdC <-chan time.Time
	defer func() {
		if hold != nil {
			hold.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.hold.started:
			if hold == nil {
				hold = time.NewTicker(holdTick)
				holdC = hold.C
			}
		case now := <-holdC:
			if p.hold.expire(now) == 0 {
				hold.Stop()
				hold, holdC = nil, nil
			}
		case <-lossTick.C:
			p.reportLosses()
		}
	}
}

func (p *Pipeline) reportLosses() {
	st := p.read.Stats()
	if n := st.Unknown + st.Errors; n > p.refusedSeen {
		p.export.ReportLost(exporter.ReasonUndecodable, n-p.refusedSeen)
		p.refusedSeen = n
	}
	for i := range p.losses {
		l := &p.losses[i]
		n, err := l.read()
		if err != nil {
			p.log.WithError(err).Warn("read lost event counters")
			continue
		}
		if n > l.seen {
			p.export.ReportLost(exporter.ReasonRingbufFull, n-l.seen)
			l.seen = n
		}
	}
}

// tee hands every event to the detection stage (which copies what its rules
// consume, never blocking) and then to the exporter. The rules see events
// before the export filters: a filter that trims what goes to the SIEM does
// not blind the detections.
type tee struct {
	detect Detector
	next   Stage
}

func (t tee) Export(ev *event.Event) {
	t.detect.Submit(ev)
	t.next.Export(ev)
}

// batchedExport is the export stage of the reader's goroutine.
type batchedExport struct{ b Batcher }

func (s batchedExport) Export(ev *event.Event) { s.b.ExportBatched(ev) }
