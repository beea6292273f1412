package exporter

import (
	"time"

	"github.com/vigilsec/vigil/event"
)

// rateLimiter is a token bucket of perMinute tokens, refilled continuously.
// A full minute's worth may pass in a burst, as with Tetragon's limit.
type rateLimiter struct {
	perMinute float64
	tokens    float64
	last      time.Time
}

func newRateLimiter(perMinute int) *rateLimiter {
	if perMinute <= 0 {
		return nil
	}
	return &rateLimiter{perMinute: float64(perMinute), tokens: float64(perMinute)}
}

func (r *rateLimiter) allow(now time.Time) bool {
	if !r.last.IsZero() {
		r.tokens += now.Sub(r.last).Minutes() * r.perMinute
		if r.tokens > r.perMinute {
			r.tokens = r.perMinute
		}
	}
	r.last = now
	if r.tokens >= 1 {
		r.tokens--
		return true
	}
	return false
}

// bypassesRateLimit reports whether ev must be exported whatever the rate:
// enforcement, dropped or audited flows, and alerts.
func bypassesRateLimit(ev *event.Event) bool {
	switch ev.Type {
	case event.TypeAlert, event.TypeLostEvents, event.TypeRateLimitInfo:
		return true
	case event.TypeProcessKprobe, event.TypeProcessTracepoint, event.TypeProcessLSM, event.TypeProcessUprobe, event.TypeProcessUsdt:
		return ev.Kprobe != nil && ev.Kprobe.Action != "" && ev.Kprobe.Action != "KPROBE_ACTION_POST"
	case event.TypeFlow:
		return ev.Flow != nil && (ev.Flow.Verdict == event.VerdictDropped || ev.Flow.Verdict == event.VerdictAudit)
	}
	return false
}
