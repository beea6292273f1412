package encode

import (
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/event"
)

// TestHTTPFlow: a request of the HTTP proxy is written in Hubble's L7
// shape, valid JSON.
func TestHTTPFlow(t *testing.T) {
	ev := &event.Event{Type: event.TypeFlow, Time: time.Date(2026, 12, 4, 1, 2, 3, 0, time.UTC), Flow: &event.Flow{
		Protocol: event.ProtoTCP, Source: netip.MustParseAddr("10.0.1.5"), SourcePort: 43512,
		Destination: netip.MustParseAddr("10.0.2.9"), DestinationPort: 80, Verdict: event.VerdictDropped,
		Direction: event.DirectionIngress, IngressDeniedBy: []string{"CiliumNetworkPolicy default/rule1"},
		HTTP: &event.HTTP{Method: "PUT", URL: "http://deathstar/v1/exhaust-port", Protocol: "HTTP/1.1", Code: 403,
			Latency: 2 * time.Millisecond, RequestBytes: 0, ResponseBytes: 15, Headers: []event.HTTPHeader{{Key: "X-Request-Id", Value: "r1"}}},
	}}
	out := NewEncoder(nil).AppendJSON(nil, ev, "node-a")
	var got struct {
		Flow struct {
			Type    string         `json:"Type"`
			Summary string         `json:"Summary"`
			L7      map[string]any `json:"l7"`
		} `json:"flow"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := map[string]any{
		"type": "RESPONSE", "latency_ns": float64(2e6), "request_bytes": float64(0), "response_bytes": float64(15),
		"http": map[string]any{"code": float64(403), "method": "PUT", "url": "http://deathstar/v1/exhaust-port", "protocol": "HTTP/1.1",
			"headers": []any{map[string]any{"key": "X-Request-Id", "value": "r1"}}},
	}
	if d := cmp.Diff(want, got.Flow.L7); d != "" {
		t.Errorf("l7 (-want +got):\n%s\n%s", d, out)
	}
	if got.Flow.Type != "L7" || got.Flow.Summary != "HTTP/1.1 403 2ms (PUT http://deathstar/v1/exhaust-port)" {
		t.Errorf("Type %q Summary %q", got.Flow.Type, got.Flow.Summary)
	}
}
