package encode

import (
	"strconv"
	"unsafe"

	"github.com/vigilsec/vigil/event"
)

// Format is the shape of the JSON objects.
type Format uint8

const (
	// FormatVigil is the default: Tetragon's field names for everything
	// Tetragon also has, and Vigil's own members (cgroup_id, mechanism,
	// errno, ...) next to them.
	FormatVigil Format = iota
	// FormatTetragon writes only what Tetragon's schema has, so that a
	// strict parser of Tetragon's protobuf types reads every line: Vigil's
	// own members are left out, lost_events become rate_limit_info, and
	// events of a type Tetragon lacks (flow, alert) are not encoded (see
	// Encodable).
	FormatTetragon
)

// Format names, as the --export-format flag takes them.
const (
	FormatNameVigil    = "vigil"
	FormatNameTetragon = "tetragon"
)

func (f Format) String() string {
	if f == FormatTetragon {
		return FormatNameTetragon
	}
	return FormatNameVigil
}

// ParseFormat returns the format named s.
func ParseFormat(s string) (Format, bool) {
	switch s {
	case FormatNameVigil, "":
		return FormatVigil, true
	case FormatNameTetragon:
		return FormatTetragon, true
	}
	return FormatVigil, false
}

// Encodable reports whether events of type t are written in format f.
// In FormatTetragon, flows and alerts are not: Tetragon has no such events.
func Encodable(f Format, t event.Type) bool {
	if f != FormatTetragon {
		return true
	}
	switch t {
	case event.TypeFlow, event.TypeAlert, event.TypeUnknown:
		return false
	}
	return true
}

// Options change how events are encoded. The zero value (or nil) encodes
// events unchanged.
type Options struct {
	// Format selects the shape; the zero value is FormatVigil.
	Format Format
	// Redact, when set, rewrites the arguments of every process object
	// (process, parent, and those inside alerts) before they are encoded.
	// It must return its input unchanged when there is nothing to redact.
	Redact func(args string) string
	// ArgumentsList adds "arguments_list" to every process object that has
	// arguments: the arguments as an array of strings, one per argument.
	ArgumentsList bool
}

// maxAlertDepth bounds the nesting of alerts that carry alerts.
const maxAlertDepth = 4

// AppendJSON appends ev as one JSON object (without a trailing newline) to
// dst: exactly one event key, then "node_name" and "time". It never fails:
// missing parts are left out, so the result is always valid JSON. opts may
// be nil. It is safe for concurrent use; an Encoder is faster. An event
// that is not Encodable in the format appends nothing.
func AppendJSON(dst []byte, ev *event.Event, nodeName string, opts *Options) []byte {
	e := Encoder{}
	if opts != nil {
		e.opts = *opts
	}
	return appendEvent(dst, ev, nodeName, &e, 0)
}

// Encoder encodes events like AppendJSON and remembers the JSON of recent
// process and pod objects. Those are immutable and shared by many events
// (a parent with its children, an exec with its exit and kprobe hits), so
// most process objects become one copy. The caches pin at most
// ProcessCacheSize processes and PodCacheSize pods.
//
// An Encoder is not safe for concurrent use.
type Encoder struct {
	opts  Options
	procs []procSlot
	pods  []podSlot
}

// Sizes of an Encoder's caches, in entries.
const (
	ProcessCacheSize = 1024
	PodCacheSize     = 256
)

type procSlot struct {
	p    *event.Process
	json []byte
}

type podSlot struct {
	p    *event.Pod
	json []byte
}

// NewEncoder returns an Encoder with the given options. opts may be nil.
func NewEncoder(opts *Options) *Encoder {
	e := &Encoder{procs: make([]procSlot, ProcessCacheSize), pods: make([]podSlot, PodCacheSize)}
	if opts != nil {
		e.opts = *opts
	}
	return e
}

// AppendJSON appends the JSON object of ev to dst; see the package function.
func (e *Encoder) AppendJSON(dst []byte, ev *event.Event, nodeName string) []byte {
	return appendEvent(dst, ev, nodeName, e, 0)
}

// slot returns the cache index of pointer p in a table of n (a power of 2).
func slot(p unsafe.Pointer, n int) int {
	return int((uint64(uintptr(p)) * 0x9E3779B97F4A7C15) >> 32 & uint64(n-1))
}

func appendEvent(dst []byte, ev *event.Event, nodeName string, e *Encoder, depth int) []byte {
	tetragon := e.opts.Format == FormatTetragon
	if !Encodable(e.opts.Format, ev.Type) {
		return dst
	}
	typ := ev.Type
	if tetragon && typ == event.TypeLostEvents {
		// Tetragon reports dropped events in rate_limit_info only.
		typ = event.TypeRateLimitInfo
	}
	dst = append(dst, '{', '"')
	dst = append(dst, typ.String()...)
	dst = append(dst, '"', ':')
	switch typ {
	case event.TypeProcessExec:
		dst = append(dst, '{')
		dst = appendProcessPair(dst, ev.Process, ev.Parent, e)
		dst = append(dst, '}')
	case event.TypeProcessExit:
		dst = appendExit(dst, ev, e)
	case event.TypeProcessKprobe, event.TypeProcessTracepoint, event.TypeProcessLSM, event.TypeProcessUprobe, event.TypeProcessUsdt:
		dst = appendKprobe(dst, ev, e)
	case event.TypeFlow:
		dst = appendFlow(dst, ev, nodeName, e)
	case event.TypeAlert:
		dst = appendAlert(dst, ev, nodeName, e, depth)
	case event.TypeLostEvents:
		dst = appendLost(dst, ev.Lost)
	case event.TypeRateLimitInfo:
		dst = append(dst, `{"number_of_dropped_process_events":"`...)
		switch {
		case ev.RateLimit != nil:
			dst = strconv.AppendUint(dst, ev.RateLimit.NumberOfDroppedProcessEvents, 10)
		case ev.Lost != nil:
			dst = strconv.AppendUint(dst, ev.Lost.Count, 10)
		default:
			dst = append(dst, '0')
		}
		dst = append(dst, `"}`...)
	default:
		dst = append(dst, '{', '}')
	}
	dst = append(dst, `,"node_name":`...)
	dst = AppendString(dst, nodeName)
	if !tetragon || timestampOK(ev.Time) {
		dst = append(dst, `,"time":`...)
		dst = appendTime(dst, ev.Time)
	}
	return append(dst, '}')
}

// sep appends a comma unless dst ends an opening brace or bracket, so
// optional members can be written without tracking which came first.
func sep(dst []byte) []byte {
	if c := dst[len(dst)-1]; c != '{' && c != '[' {
		dst = append(dst, ',')
	}
	return dst
}

// appendKey appends a separator and `"key":`.
func appendKey(dst []byte, key string) []byte {
	dst = sep(dst)
	dst = append(dst, '"')
	dst = append(dst, key...)
	return append(dst, '"', ':')
}

func appendStringField(dst []byte, key, val string) []byte {
	dst = appendKey(dst, key)
	return AppendString(dst, val)
}

func appendUintField(dst []byte, key string, v uint64) []byte {
	dst = appendKey(dst, key)
	return strconv.AppendUint(dst, v, 10)
}

// appendUint64Field writes a 64-bit unsigned value as a quoted decimal, as
// protobuf's JSON mapping (and so Tetragon) does, so that consumers in
// languages with float64 numbers do not lose precision.
func appendUint64Field(dst []byte, key string, v uint64) []byte {
	dst = appendKey(dst, key)
	dst = append(dst, '"')
	dst = strconv.AppendUint(dst, v, 10)
	return append(dst, '"')
}

func appendBoolField(dst []byte, key string, v bool) []byte {
	dst = appendKey(dst, key)
	if v {
		return append(dst, "true"...)
	}
	return append(dst, "false"...)
}

func appendStringList(dst []byte, key string, list []string) []byte {
	dst = appendKey(dst, key)
	dst = append(dst, '[')
	for i, s := range list {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendString(dst, s)
	}
	return append(dst, ']')
}

// appendProcessPair appends the "process" and "parent" members, each when set.
func appendProcessPair(dst []byte, proc, parent *event.Process, e *Encoder) []byte {
	if proc != nil {
		dst = appendKey(dst, "process")
		dst = appendProcess(dst, proc, e)
	}
	if parent != nil {
		dst = appendKey(dst, "parent")
		dst = appendProcess(dst, parent, e)
	}
	return dst
}

func appendExit(dst []byte, ev *event.Event, e *Encoder) []byte {
	dst = append(dst, '{')
	dst = appendProcessPair(dst, ev.Process, ev.Parent, e)
	var x event.Exit
	if ev.Exit != nil {
		x = *ev.Exit
	}
	dst = appendUintField(dst, "status", uint64(x.Status))
	if x.Signal != 0 {
		dst = appendKey(dst, "signal")
		dst = append(dst, '"')
		dst = appendSignal(dst, x.Signal)
		dst = append(dst, '"')
	}
	if x.CoreDumped && e.opts.Format != FormatTetragon {
		dst = appendBoolField(dst, "core_dumped", true)
	}
	if e.opts.Format != FormatTetragon || timestampOK(ev.Time) {
		dst = appendKey(dst, "time")
		dst = appendTime(dst, ev.Time)
	}
	return append(dst, '}')
}

func appendLost(dst []byte, l *event.Lost) []byte {
	var x event.Lost
	if l != nil {
		x = *l
	}
	dst = append(dst, `{"count":`...)
	dst = strconv.AppendUint(dst, x.Count, 10)
	dst = appendStringField(dst, "reason", x.Reason)
	if x.Sink != "" {
		dst = appendStringField(dst, "sink", x.Sink)
	}
	return append(dst, '}')
}

func appendAlert(dst []byte, ev *event.Event, nodeName string, e *Encoder, depth int) []byte {
	dst = append(dst, '{')
	a := ev.Alert
	if a == nil {
		a = &event.Alert{}
	}
	r := &a.Rule
	dst = append(dst, `"rule":{"id":`...)
	dst = AppendString(dst, r.ID)
	if r.Name != "" {
		dst = appendStringField(dst, "name", r.Name)
	}
	if r.Severity != "" {
		dst = appendStringField(dst, "severity", r.Severity)
	}
	if r.Tactic != "" || r.Technique != "" {
		dst = appendKey(dst, "mitre")
		dst = append(dst, '{')
		if r.Tactic != "" {
			dst = appendStringField(dst, "tactic", r.Tactic)
		}
		if r.Technique != "" {
			dst = appendStringField(dst, "technique", r.Technique)
		}
		dst = append(dst, '}')
	}
	if len(r.Tags) > 0 {
		dst = appendStringList(dst, "tags", r.Tags)
	}
	dst = append(dst, '}')
	if a.Description != "" {
		dst = appendStringField(dst, "description", a.Description)
	}
	proc, parent := ev.Process, ev.Parent
	if a.Event != nil {
		if depth < maxAlertDepth {
			dst = appendKey(dst, "event")
			dst = appendEvent(dst, a.Event, nodeName, e, depth+1)
		}
		if proc == nil {
			proc, parent = a.Event.Process, a.Event.Parent
		}
	} else if len(a.Raw) > 0 {
		dst = appendKey(dst, "event")
		dst = append(dst, a.Raw...)
	}
	dst = appendProcessPair(dst, proc, parent, e)
	if proc != nil && proc.Pod != nil {
		dst = appendKey(dst, "pod")
		dst = appendPod(dst, proc.Pod, e)
	}
	return append(dst, '}')
}
