package encode

import (
	"strconv"
	"testing"

	"github.com/vigilsec/vigil/event"
)

// BenchmarkAppendJSON measures one encode per event type into a reused
// buffer. The process objects are distinct per event type, as in a real
// stream where each exec brings a new process.
//
//	go test ./exporter/encode -run '^$' -bench AppendJSON -benchmem -cpu 1
func BenchmarkAppendJSON(b *testing.B) {
	fx := fixtures()
	for _, name := range []string{"process_exec", "process_exit", "process_kprobe", "flow", "alert"} {
		ev := fx[name]
		b.Run(name, func(b *testing.B) {
			benchEncode(b, ev)
		})
	}
}

func benchEncode(b *testing.B, ev *event.Event) {
	buf := make([]byte, 0, 64<<10)
	b.ReportAllocs()
	var n int
	for b.Loop() {
		buf = AppendJSON(buf[:0], ev, nodeName, nil)
		n += len(buf)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppendText measures the human one-line format.
func BenchmarkAppendText(b *testing.B) {
	ev := fixtures()["process_kprobe"]
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendText(buf[:0], ev, TextOptions{Color: true})
	}
}

// streamEvents builds a realistic exec/exit stream: n short-lived processes
// spread over 8 pods, each started by one of 64 long-lived shells; every
// process execs, and exits 100 events later.
func streamEvents(n int) []*event.Event {
	pods := make([]*event.Pod, 8)
	for i := range pods {
		p := fixturePod()
		p.Name = p.Name + "-" + strconv.Itoa(i)
		pods[i] = p
	}
	parents := make([]*event.Process, 64)
	for i := range parents {
		p := fixtureParent(pods[i%len(pods)])
		p.PID = uint32(4000 + i)
		p.ExecID = "parent-" + strconv.Itoa(i)
		parents[i] = p
	}
	var out []*event.Event
	procs := make([]*event.Process, n)
	for i := 0; i < n; i++ {
		parent := parents[i%len(parents)]
		p := fixtureProcess(parent.Pod)
		p.PID = uint32(10000 + i)
		p.ExecID = "proc-" + strconv.Itoa(i)
		p.ParentExecID = parent.ExecID
		procs[i] = p
		out = append(out, &event.Event{Type: event.TypeProcessExec, Time: fixtureTime, Process: p, Parent: parent})
		if j := i - 50; j >= 0 {
			out = append(out, &event.Event{Type: event.TypeProcessExit, Time: fixtureTime,
				Process: procs[j], Parent: parents[j%len(parents)], Exit: &event.Exit{Status: 0}})
		}
	}
	return out
}

// BenchmarkEncoderStream encodes a stream of exec and exit events with an
// Encoder, as the exporter does: each exec brings a new process object,
// parents and exits are cache hits.
func BenchmarkEncoderStream(b *testing.B) {
	evs := streamEvents(20000)
	enc := NewEncoder(nil)
	buf := make([]byte, 0, 64<<10)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		buf = enc.AppendJSON(buf[:0], evs[i], nodeName)
		if i++; i == len(evs) {
			i = 0
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
