package agent

import (
	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/process"
	"github.com/vigilsec/vigil/rules"
)

// ruleTee hands every event to the rules engine (which copies what its
// rules consume, never blocking) and then to the exporter. The rules see
// events before the export filters: a filter that trims what goes to the
// SIEM does not blind the detections.
type ruleTee struct {
	rules *rules.Engine
	next  process.Sink
}

func (t ruleTee) Export(ev *event.Event) {
	t.rules.Submit(ev)
	t.next.Export(ev)
}
