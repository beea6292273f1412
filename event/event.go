package event

import "time"

// Type names the one event key of an exported JSON object.
type Type uint8

const (
	TypeUnknown Type = iota
	TypeProcessExec
	TypeProcessExit
	TypeProcessKprobe
	TypeProcessTracepoint
	TypeProcessLSM
	TypeFlow
	TypeAlert
	TypeLostEvents
	TypeRateLimitInfo
	TypeProcessUprobe
	TypeProcessUsdt
	typeCount
)

var typeNames = [typeCount]string{
	TypeUnknown:           "unknown",
	TypeProcessExec:       "process_exec",
	TypeProcessExit:       "process_exit",
	TypeProcessKprobe:     "process_kprobe",
	TypeProcessTracepoint: "process_tracepoint",
	TypeProcessLSM:        "process_lsm",
	TypeFlow:              "flow",
	TypeAlert:             "alert",
	TypeLostEvents:        "lost_events",
	TypeRateLimitInfo:     "rate_limit_info",
	TypeProcessUprobe:     "process_uprobe",
	TypeProcessUsdt:       "process_usdt",
}

// String returns the JSON key of the event type, for example "process_exec".
func (t Type) String() string {
	if t >= typeCount {
		return typeNames[TypeUnknown]
	}
	return typeNames[t]
}

// Types lists every type an exported event can have, in a stable order.
func Types() []Type {
	out := make([]Type, 0, typeCount-1)
	for t := TypeProcessExec; t < typeCount; t++ {
		out = append(out, t)
	}
	return out
}

// ParseType returns the type whose JSON key is s.
func ParseType(s string) (Type, bool) {
	for t := TypeProcessExec; t < typeCount; t++ {
		if typeNames[t] == s {
			return t, true
		}
	}
	return TypeUnknown, false
}

// Event is one record of the stream. Exactly one of the type-specific
// pointers is set, matching Type. Process and Parent point at immutable
// process-cache entries; consumers must not modify them.
//
// An Event handed to a consumer is only valid for the duration of the call:
// the producer reuses it. Consumers that keep an event must Clone it.
type Event struct {
	Type Type
	Time time.Time

	Process *Process
	Parent  *Process

	Exit      *Exit
	Kprobe    *Kprobe
	Flow      *Flow
	Alert     *Alert
	Lost      *Lost
	RateLimit *RateLimitInfo
}

// Clone returns a copy of e that stays valid after the producer reuses e.
// Process objects are immutable and shared; type-specific parts are copied.
func (e *Event) Clone() *Event {
	c := *e
	if e.Exit != nil {
		x := *e.Exit
		c.Exit = &x
	}
	if e.Kprobe != nil {
		c.Kprobe = e.Kprobe.clone()
	}
	if e.Flow != nil {
		x := *e.Flow
		c.Flow = &x
	}
	if e.Alert != nil {
		x := *e.Alert
		if e.Alert.Event != nil {
			x.Event = e.Alert.Event.Clone()
		}
		c.Alert = &x
	}
	if e.Lost != nil {
		x := *e.Lost
		c.Lost = &x
	}
	if e.RateLimit != nil {
		x := *e.RateLimit
		c.RateLimit = &x
	}
	return &c
}

// PolicyName returns the name of the policy that produced the event, if any.
func (e *Event) PolicyName() string {
	switch {
	case e.Kprobe != nil:
		return e.Kprobe.PolicyName
	case e.Flow != nil:
		if len(e.Flow.EgressDeniedBy) > 0 {
			return e.Flow.EgressDeniedBy[0]
		}
		if len(e.Flow.IngressDeniedBy) > 0 {
			return e.Flow.IngressDeniedBy[0]
		}
	case e.Alert != nil:
		return e.Alert.Rule.ID
	}
	return ""
}

// Exit is the type-specific part of a process_exit event.
type Exit struct {
	// Status is the exit code the process passed to exit(2), 0 when it was
	// killed by a signal.
	Status uint32
	// Signal is the number of the signal that terminated the process, or 0.
	Signal uint32
	// CoreDumped is set when the terminating signal dumped core.
	CoreDumped bool
}

// Lost reports events that never reached the stream.
type Lost struct {
	Count  uint64
	Reason string
	// Sink names the sink that lost the events when the loss happened in
	// one sink only (queue_full, sink_error); empty otherwise.
	Sink string
}

// RateLimitInfo reports events dropped by the export rate limit.
type RateLimitInfo struct {
	NumberOfDroppedProcessEvents uint64
}

// Alert is a detection raised by a rule over the enriched stream.
type Alert struct {
	Rule        Rule
	Description string
	// Event is the event that triggered the rule.
	Event *Event
	// Raw is the triggering event as exported JSON, when Event is nil:
	// rules evaluated offline over recorded events (vigil rules test).
	Raw []byte
}

// Rule is the metadata of a detection rule, as carried by its alerts.
type Rule struct {
	ID        string
	Name      string
	Severity  string
	Tactic    string
	Technique string
	Tags      []string
}
