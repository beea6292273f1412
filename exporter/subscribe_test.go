package exporter

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/exporter/filter"
)

// A filtered live tail still gets every notice of lost events, and is told
// of the lines it lost itself once it has room again.
func TestSubscribeNoticesAndRequire(t *testing.T) {
	h := start(t, nil)
	require, err := filter.Parse("--namespace", `{"namespace":["shop"]}`)
	if err != nil {
		t.Fatal(err)
	}
	compact := h.e.Subscribe(SubscribeOptions{Require: require, Format: FormatCompact, Timestamps: true})
	defer compact.Cancel()
	h.e.Export(execEvent(proc(1, "/usr/bin/curl", "https://x", &event.Pod{Namespace: "shop", Name: "web"})))
	h.e.Export(execEvent(proc(2, "/usr/bin/curl", "https://y", &event.Pod{Namespace: "other", Name: "db"})))
	h.e.Export(&event.Event{Type: event.TypeLostEvents, Time: t0, Lost: &event.Lost{Count: 7, Reason: ReasonRingbufFull}})
	var got []string
	for len(compact.C) > 0 {
		got = append(got, string(<-compact.C))
	}
	want := []string{
		"2026-11-22T07:18:21.123Z 🚀 process shop/web /usr/bin/curl https://x\n",
		"2026-11-22T07:18:21.123Z ⚠️ lost    7 events (ringbuf_full)\n",
	}
	if strings.Join(got, "") != strings.Join(want, "") {
		t.Errorf("compact lines:\n got %q\nwant %q", got, want)
	}

	// A subscriber of 4 lines that does not read loses the rest; after it
	// read, the next line is preceded by a notice of how many it lost.
	slow := h.e.Subscribe(SubscribeOptions{Buffer: 4})
	defer slow.Cancel()
	for i := 0; i < 10; i++ {
		h.e.Export(execEvent(proc(uint32(10+i), "/bin/true", "", nil)))
	}
	for len(slow.C) > 0 {
		<-slow.C
	}
	h.e.Export(execEvent(proc(99, "/bin/false", "", nil)))
	var notice map[string]any
	if err := json.Unmarshal(<-slow.C, &notice); err != nil {
		t.Fatal(err)
	}
	if l, _ := notice["lost_events"].(map[string]any); l == nil || l["reason"] != ReasonSubscriberBehind || l["count"] != float64(6) {
		t.Errorf("notice %v, want lost_events of 6, reason %s", notice, ReasonSubscriberBehind)
	}
	if line := string(<-slow.C); !strings.Contains(line, `"/bin/false"`) {
		t.Errorf("line after the notice: %s", line)
	}
}
