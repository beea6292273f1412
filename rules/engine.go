package rules

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"
	"golang.org/x/time/rate"

	"github.com/vigilsec/vigil/event"
)

// ReasonQueueFull is the lost-events reason of events the rules' queue
// had no room for.
const ReasonQueueFull = "rules_queue_full"

// Config configures the engine.
type Config struct {
	// Paths are rule files or directories of them (--rules).
	Paths []string
	// NoDefaultRules leaves the embedded default rules out.
	NoDefaultRules bool
	// Exceptions are RuleExceptions files (--rules-exceptions).
	Exceptions []string
	// QueueSize is how many events may wait for evaluation.
	QueueSize int
	// NodeName is the node_name of the inputs, as exported.
	NodeName string
}

// DefaultConfig returns the defaults of the flags.
func DefaultConfig() Config { return Config{QueueSize: 8192} }

// AddFlags registers the engine's flags.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	d := DefaultConfig()
	fs.StringArrayVar(&c.Paths, "rules", nil, "detection rule file (.rego) or directory of them, watched and reloaded (repeatable)")
	fs.BoolVar(&c.NoDefaultRules, "no-default-rules", false, "do not run the embedded default detection rules")
	fs.StringArrayVar(&c.Exceptions, "rules-exceptions", nil, "RuleExceptions file silencing rules for binaries, namespaces or images (repeatable)")
	fs.IntVar(&c.QueueSize, "rules-queue-size", d.QueueSize, "events that may wait for rule evaluation before new ones are dropped (counted)")
}

// Validate names the flag of a bad setting.
func (c *Config) Validate() error {
	if c.QueueSize < 1 {
		return fmt.Errorf("--rules-queue-size %d: must be at least 1", c.QueueSize)
	}
	return nil
}

// Enabled reports whether any rule can run.
func (c *Config) Enabled() bool { return !c.NoDefaultRules || len(c.Paths) > 0 }

// Sink receives alerts and the count of events the engine dropped.
type Sink interface {
	Export(*event.Event)
	ReportLost(reason string, n uint64)
}

// loaded is the rule set in force and its exceptions.
type loaded struct {
	set *Set
	exc *Exceptions
	// rules are the set's rules by file, to fall back on when a file
	// stops compiling.
	rules map[string]*Rule
}

// Engine evaluates rules over events off the hot path.
type Engine struct {
	cfg  Config
	log  logrus.FieldLogger
	out  Sink
	cur  atomic.Pointer[loaded]
	q    chan queued
	m    *metrics
	warn *rate.Limiter

	// Used by the evaluating goroutine only.
	ectx *ectx
}

// New loads the rules and exceptions. A rule file with a problem is logged
// and left out, the others run; a path that does not exist, bad
// exceptions, or default rules that do not compile are errors.
func New(cfg Config, log logrus.FieldLogger, reg prometheus.Registerer, out Sink) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{
		cfg: cfg, log: log, out: out, q: make(chan queued, cfg.QueueSize),
		m: newMetrics(reg), warn: rate.NewLimiter(rate.Every(10*time.Second), 3),
		ectx: newEctx(&materializer{}),
	}
	if err := e.reload(context.Background(), true); err != nil {
		return nil, err
	}
	return e, nil
}

// Rules returns the rules in force.
func (e *Engine) Rules() []*Rule { return e.cur.Load().set.Rules() }

// Wants reports whether a rule consumes events of type t.
func (e *Engine) Wants(t event.Type) bool { return e.cur.Load().set.Wants(t) }

// Submit queues a copy of ev for evaluation if a rule can alert on it.
// The rules' conditions are checked first, on the event in place: an
// event no rule can alert on is counted and left, at no allocation (most
// events). Submit never blocks: when the queue is full the event is
// dropped, counted, and reported as lost (reason rules_queue_full). It is
// safe for concurrent use.
func (e *Engine) Submit(ev *event.Event) {
	if ev == nil {
		return
	}
	set := e.cur.Load().set
	if !set.Wants(ev.Type) {
		return
	}
	sc, may := set.screen(ev, e.cfg.NodeName)
	if !may {
		e.m.ruledOut.Inc()
		return
	}
	select {
	case e.q <- queued{ev: ev.Clone(), set: set, bodies: sc}:
	default:
		e.m.dropped.Inc()
		e.out.ReportLost(ReasonQueueFull, 1)
	}
}

// Run evaluates queued events and reloads changed rule and exception files
// until ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	w, err := e.watch()
	if err != nil {
		return err
	}
	defer w.Close()
	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case q := <-e.q:
			e.evaluate(ctx, q)
		case fe := <-w.Events:
			if e.relevant(fe.Name) {
				timer = time.After(200 * time.Millisecond)
			}
		case err := <-w.Errors:
			e.log.WithError(err).Warn("watch rule files")
		case <-timer:
			timer = nil
			if err := e.reload(ctx, false); err != nil {
				e.log.WithError(err).Error("rules not reloaded; the rules in force stay")
			}
		}
	}
}

func (e *Engine) watch() (*fsnotify.Watcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch rule files: %w", err)
	}
	dirs := map[string]bool{}
	add := func(p string, recurse bool) {
		abs, err := filepath.Abs(p)
		if err != nil {
			return
		}
		if !recurse {
			abs = filepath.Dir(abs)
		}
		if dirs[abs] {
			return
		}
		dirs[abs] = true
		if err := w.Add(abs); err != nil {
			e.log.WithError(err).WithField("path", abs).Warn("cannot watch rule files")
		}
	}
	for _, p := range e.cfg.Paths {
		add(p, isDir(p))
	}
	for _, p := range e.cfg.Exceptions {
		add(p, false)
	}
	return w, nil
}

func (e *Engine) relevant(name string) bool {
	if IsRuleFile(name) {
		return true
	}
	abs, _ := filepath.Abs(name)
	for _, p := range e.cfg.Exceptions {
		if a, _ := filepath.Abs(p); a == abs {
			return true
		}
	}
	return false
}

// reload reads every rule and exception file and swaps the set in force. A
// rule file that does not parse or compile keeps its previous version (or
// stays out if it never compiled); exceptions that do not parse keep the
// previous ones. At start (first), a missing path or bad exceptions are
// errors.
func (e *Engine) reload(ctx context.Context, first bool) error {
	prev := e.cur.Load()
	if prev == nil {
		prev = &loaded{rules: map[string]*Rule{}}
	}
	srcs, err := defaultSources(!e.cfg.NoDefaultRules)
	if err != nil {
		return err
	}
	user, err := readSources(e.cfg.Paths)
	if err != nil {
		if first {
			return err
		}
		e.log.WithError(err).Warn("some rule files could not be read")
	}
	srcs = append(srcs, user...)

	cand := map[string]*Rule{}
	for _, s := range srcs {
		r, err := ParseRule(s.file, s.text)
		if err != nil {
			e.refused(s.file, err, prev.rules[s.file], cand)
			continue
		}
		cand[s.file] = r
	}
	set, err := Compile(ctx, values(cand))
	if err != nil {
		// Fall back, for the files the errors name, on their version in
		// force, then try once more.
		var named Errors
		if !errors.As(err, &named) {
			return err
		}
		for _, ne := range named {
			if _, ok := cand[ne.File]; ok {
				delete(cand, ne.File)
				e.refused(ne.File, ne, prev.rules[ne.File], cand)
			}
		}
		if set, err = Compile(ctx, values(cand)); err != nil {
			if first {
				return err
			}
			e.m.reloads.WithLabelValues("error").Inc()
			return err
		}
	}
	exc, err := readExceptions(e.cfg.Exceptions)
	if err != nil {
		if first {
			return err
		}
		e.log.WithError(err).Error("rule exceptions not reloaded; the exceptions in force stay")
		exc = prev.exc
	}
	if u := exc.unknownRules(set); len(u) > 0 {
		slices.Sort(u)
		e.log.WithField("rules", u).Warn("rule exceptions name rules that are not loaded")
	}
	e.cur.Store(&loaded{set: set, exc: exc, rules: cand})
	e.m.loaded.Set(float64(len(set.rules)))
	e.m.reloads.WithLabelValues("ok").Inc()
	if !first {
		e.log.WithField("rules", len(set.rules)).Info("rules reloaded")
	}
	return nil
}

// refused logs a rule file that did not load and puts its version in force
// (if any) back into cand.
func (e *Engine) refused(file string, err error, inForce *Rule, cand map[string]*Rule) {
	e.m.fileErrors.Inc()
	log := e.log.WithError(err).WithField("file", file)
	if inForce != nil {
		cand[file] = inForce
		log.Error("rule file refused; its previous version stays in force")
		return
	}
	log.Error("rule file refused")
}

func values(m map[string]*Rule) []*Rule {
	out := make([]*Rule, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	return out
}

// queued is an event waiting for evaluation: a copy, the set whose
// guards let it in, and the bodies whose guards held.
type queued struct {
	ev     *event.Event
	set    *Set
	bodies screened
}

// evaluate runs the rules for a queued event and exports its alerts.
func (e *Engine) evaluate(ctx context.Context, q queued) {
	start := time.Now()
	defer func() { e.m.duration.Observe(time.Since(start).Seconds()) }()
	l := e.cur.Load()
	e.m.evaluated.Inc()
	c, ev := e.ectx, q.ev
	matches, errs := q.set.evalEvent(ctx, c, ev, e.cfg.NodeName, q.bodies)
	for _, r := range c.rego {
		e.m.rego.WithLabelValues(r.ID).Inc()
	}
	for _, re := range errs {
		e.m.evalErrors.WithLabelValues(re.Rule.ID).Inc()
		if e.warn.Allow() {
			e.log.WithError(re.Err).WithFields(logrus.Fields{"rule": re.Rule.ID, "file": re.Rule.File}).
				Warn("rule failed on an event (counted; logged at most every 10 s)")
		}
	}
	var subject Subject
	if len(matches) > 0 {
		subject = subjectOf(ev.Type, c.root)
	}
	c.view, c.root = view{}, undef
	for _, m := range matches {
		if l.exc.Silences(m.Rule, subject) {
			e.m.silenced.WithLabelValues(m.Rule.ID).Inc()
			continue
		}
		e.m.alerts.WithLabelValues(m.Rule.ID, m.Rule.Severity).Inc()
		e.out.Export(AlertEvent(m, ev, time.Now()))
	}
}

// AlertEvent is the alert event of match m on ev.
func AlertEvent(m Match, ev *event.Event, at time.Time) *event.Event {
	r := m.Rule
	return &event.Event{
		Type: event.TypeAlert, Time: at, Process: ev.Process, Parent: ev.Parent,
		Alert: &event.Alert{
			Rule: event.Rule{ID: r.ID, Name: r.Name, Severity: r.Severity, Tactic: r.Tactic,
				Technique: r.Technique, Tags: r.Tags},
			Description: m.Description,
			Event:       ev,
		},
	}
}
