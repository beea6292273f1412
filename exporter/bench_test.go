package exporter

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/exporter/encode"
	"github.com/vigilsec/vigil/exporter/filter"
	"github.com/vigilsec/vigil/exporter/sink"
)

// benchStream builds a realistic exec/exit stream: n short-lived processes
// in 8 pods, started by 64 long-lived shells, each exiting 50 events after
// its exec. Every process object is new at its exec, as on a busy node.
func benchStream(n int) []*event.Event { return benchStreamArgs(n, false) }

// benchStreamArgs is benchStream; with unique, every command line differs
// (a request id is appended), the worst case for caches keyed by content.
func benchStreamArgs(n int, unique bool) []*event.Event {
	const caps = 0xa80425fb // a container runtime's default set
	pods := make([]*event.Pod, 8)
	for i := range pods {
		pods[i] = &event.Pod{Namespace: []string{"shop", "db"}[i%2], Name: fmt.Sprintf("web-7c9f8d-x2x4%d", i),
			UID:      "0c9b4f6e-4d0f-4b55-9c1f-0f4b1c0de001",
			Labels:   []event.Label{{Key: "app", Value: "web"}, {Key: "pod-template-hash", Value: "7c9f8d"}},
			Workload: "web", WorkloadKind: "Deployment",
			Container: event.Container{ID: "containerd://3f1e2d4c5b6a79880123456789abcdef0123456789abcdef", Name: "web",
				ImageName: "registry.example.com/shop/web:1.4.2", StartTime: t0.Add(-time.Hour)}}
	}
	mk := func(pid uint32, binary, args string, pod *event.Pod, parent string) *event.Process {
		return &event.Process{ExecID: fmt.Sprintf("bm9kZS1hOjEyMzQ1Njc4OTAxMjM0OjQy%06d", pid), ParentExecID: parent,
			PID: pid, TID: pid, UID: 1000, AUID: 4294967295, CWD: "/srv/app", Binary: binary, Arguments: args,
			Flags: event.FlagExecve | event.FlagClone, StartTime: t0, CapPermitted: caps, CapEffective: caps,
			Creds:      event.Credentials{UID: 1000, GID: 1000, EUID: 1000, EGID: 1000, SUID: 1000, SGID: 1000, FSUID: 1000, FSGID: 1000},
			Namespaces: event.Namespaces{PidInum: 4026532801, MntInum: 4026532799, NetInum: 4026532803},
			CgroupID:   10542, Pod: pod}
	}
	parents := make([]*event.Process, 64)
	for i := range parents {
		parents[i] = mk(uint32(4000+i), "/bin/sh", `-c "curl -s https://api.example.com/v1/orders"`, pods[i%len(pods)], "init")
	}
	binaries := []string{"/usr/bin/curl", "/usr/bin/psql", "/bin/cat", "/usr/bin/python3"}
	args := []string{`-s -H "Authorization: Bearer abc" https://api.example.com/v1/orders?id=42`,
		"-h db --password=hunter2 -U app", "/etc/hosts", "-m http.server 8080"}
	var out []*event.Event
	procs := make([]*event.Process, n)
	for i := 0; i < n; i++ {
		parent := parents[i%len(parents)]
		// Own copies, as the process cache holds strings decoded per process:
		// caches keyed by string identity must not hit across processes.
		a := strings.Clone(args[i%len(args)])
		if unique {
			a += fmt.Sprintf(" --request-id=%d", i)
		}
		p := mk(uint32(10000+i), strings.Clone(binaries[i%len(binaries)]), a, parent.Pod, parent.ExecID)
		procs[i] = p
		out = append(out, &event.Event{Type: event.TypeProcessExec, Time: t0, Process: p, Parent: parent})
		if j := i - 50; j >= 0 {
			out = append(out, &event.Event{Type: event.TypeProcessExit, Time: t0, Process: procs[j],
				Parent: parents[j%len(parents)], Exit: &event.Exit{}})
		}
	}
	return out
}

// runBench exports b.N events from the stream to the configured sinks and
// waits for Run to flush them, so the rate includes delivery. It measures
// the sustained rate: when a sink's queue is half full the producer waits,
// as a real producer would be limited by the slowest sink it must not
// overrun. The mean line size is reported as B/event.
func runBench(b *testing.B, cfg Config, evs []*event.Event, delivered func() int64) {
	cfg.NodeName = "node-a"
	cfg.LostEventsInterval = Duration(time.Hour)
	cfg.FlushTimeout = Duration(time.Minute)
	e, err := New(cfg, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	var bytes int64
	for _, ev := range evs {
		bytes += int64(len(encode.AppendJSON(nil, ev, "node-a", nil)) + 1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	n := 0
	half := int64(cfg.QueueMB) << 19
	for b.Loop() {
		ev := evs[n%len(evs)]
		e.Export(ev)
		n++
		if n%256 == 0 {
			for _, q := range e.queues {
				for q.bytes.Load() > half {
					time.Sleep(20 * time.Microsecond)
				}
			}
			for _, s := range e.sinks {
				// Nor let webhook batches pile up past what memory holds.
				if w, ok := s.(*sink.Webhook); ok {
					for w.Spooled().MemoryBytes > int64(cfg.WebhookMemoryMB)<<19 || w.Spooled().DiskBytes > 0 {
						time.Sleep(20 * time.Microsecond)
					}
				}
			}
		}
	}
	for delivered != nil && delivered() < int64(n) && time.Since(start) < 5*time.Minute {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	lost := e.Lost(ReasonQueueFull) + e.Lost(ReasonSinkError)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(bytes)/float64(len(evs)), "B/event")
	b.ReportMetric(float64(lost), "lost")
	if lost > 0 {
		b.Errorf("%d of %d events lost", lost, n)
	}
}

// BenchmarkExportFile exports to a file that rotates every 64 MiB, keeping
// two backups. "pods" are container processes with full pod metadata
// (about 2.5 KB per exec line), "host" host processes (about 1 KB). The
// directory is $VIGIL_BENCH_DIR, else a temporary directory.
//
//	go test ./exporter -run '^$' -bench ExportFile -cpu 1 -benchtime 1000000x
func BenchmarkExportFile(b *testing.B) {
	for _, tc := range []struct {
		name string
		evs  []*event.Event
	}{
		{"pods", benchStream(20000)},
		{"host", hostStream(20000)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			dir := os.Getenv("VIGIL_BENCH_DIR")
			if dir == "" {
				dir = b.TempDir()
			} else {
				var err error
				if dir, err = os.MkdirTemp(dir, "vigil-bench-"); err != nil {
					b.Fatal(err)
				}
				defer os.RemoveAll(dir)
			}
			cfg := DefaultConfig()
			cfg.Stdout = false
			cfg.File = filepath.Join(dir, "events.log")
			cfg.FileMaxSizeMB = 64
			cfg.FileMaxBackups = 2
			cfg.QueueMB = 64
			runBench(b, cfg, tc.evs, nil)
		})
	}
}

// hostStream is benchStream without pods: host processes.
func hostStream(n int) []*event.Event {
	evs := benchStream(n)
	seen := map[*event.Process]*event.Process{}
	strip := func(p *event.Process) *event.Process {
		if p == nil {
			return nil
		}
		if c, ok := seen[p]; ok {
			return c
		}
		c := *p
		c.Pod = nil
		seen[p] = &c
		return &c
	}
	for _, ev := range evs {
		ev.Process, ev.Parent = strip(ev.Process), strip(ev.Parent)
	}
	return evs
}

// BenchmarkExportWebhook exports to a local HTTP receiver, in the same
// process, that decompresses and counts the lines; batches of 1 MiB, with
// and without gzip.
//
//	go test ./exporter -run '^$' -bench ExportWebhook -benchtime 1000000x
func BenchmarkExportWebhook(b *testing.B) {
	b.Run("gzip", func(b *testing.B) { benchWebhook(b, true) })
	b.Run("plain", func(b *testing.B) { benchWebhook(b, false) })
}

func benchWebhook(b *testing.B, gz bool) {
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		sc := bufio.NewScanner(body)
		sc.Buffer(nil, 1<<20)
		var n int64
		for sc.Scan() {
			n++
		}
		got.Add(n)
	}))
	defer srv.Close()
	cfg := DefaultConfig()
	cfg.Stdout = false
	cfg.Webhook = srv.URL
	cfg.WebhookGzip = gz
	cfg.WebhookSpoolDir = b.TempDir()
	cfg.QueueMB = 64
	runBench(b, cfg, benchStream(20000), got.Load)
}

// BenchmarkShaping measures the cost of allow/deny filters and redaction
// against plain encoding, and reports it as a percentage of the encode
// cost. Every event passes the filters (so both sides encode the same
// events) and half the processes have a secret to redact. Each iteration
// builds a block of fresh events and encodes it plainly and, with its own
// encoder, filtered and redacted; which pass goes first alternates. ns/op is
// per block, all passes. shaping-% compares with the caching encoder the
// exporter uses; shaping-%-of-uncached with encoding every object afresh
// (encode.AppendJSON).
// "unique-commands" makes every command line different, the worst case for
// the caches keyed by content.
//
//	go test ./exporter -run '^$' -bench Shaping -cpu 1
func BenchmarkShaping(b *testing.B) {
	b.Run("repeating-commands", func(b *testing.B) { benchShaping(b, false) })
	b.Run("unique-commands", func(b *testing.B) { benchShaping(b, true) })
}

func benchShaping(b *testing.B, unique bool) {
	allow, err := filter.Parse("allow", `{"namespace":["shop","db"]}`+"\n"+`{"namespace":[""],"binary_regex":["^/usr/sbin/"]}`)
	if err != nil {
		b.Fatal(err)
	}
	deny, err := filter.Parse("deny", `{"binary_regex":["^/bin/(ls|dd)$"]}`+"\n"+`{"labels":["app=noise"]}`)
	if err != nil {
		b.Fatal(err)
	}
	red, err := filter.NewRedactor("redact", []string{`(?:--password)(?:\s+|=)(\S+)`, `Bearer (\S+)`})
	if err != nil {
		b.Fatal(err)
	}
	set := &filter.Set{Allow: allow, Deny: deny}
	plain := encode.NewEncoder(nil)
	shaped := encode.NewEncoder(&encode.Options{Redact: red.Redact})
	buf := make([]byte, 0, 64<<10)
	const block = 4000
	var plainTime, shapedTime, uncachedTime time.Duration
	var events, round int
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		evs := benchStreamArgs(block, unique)
		runtime.GC() // no collection pending while measuring
		b.StartTimer()
		plainRun := func() time.Duration {
			start := time.Now()
			for _, ev := range evs {
				buf = plain.AppendJSON(buf[:0], ev, "node-a")
			}
			return time.Since(start)
		}
		shapedRun := func() time.Duration {
			start := time.Now()
			for _, ev := range evs {
				if !set.Pass(ev) {
					b.Fatal("the filters must pass every event of this stream")
				}
				buf = shaped.AppendJSON(buf[:0], ev, "node-a")
			}
			return time.Since(start)
		}
		// The second pass over a block finds it warmer in the CPU caches:
		// alternate which goes first.
		if round%2 == 0 {
			plainTime += plainRun()
			shapedTime += shapedRun()
		} else {
			shapedTime += shapedRun()
			plainTime += plainRun()
		}
		round++
		start := time.Now()
		for _, ev := range evs {
			buf = encode.AppendJSON(buf[:0], ev, "node-a", nil)
		}
		uncachedTime += time.Since(start)
		events += len(evs)
	}
	b.ReportMetric(float64(plainTime.Nanoseconds())/float64(events), "encode-ns/event")
	b.ReportMetric(float64(shapedTime.Nanoseconds())/float64(events), "shaped-ns/event")
	b.ReportMetric(float64(uncachedTime.Nanoseconds())/float64(events), "uncached-encode-ns/event")
	b.ReportMetric(100*float64(shapedTime-plainTime)/float64(plainTime), "shaping-%")
	b.ReportMetric(100*float64(shapedTime-plainTime)/float64(uncachedTime), "shaping-%-of-uncached")
}
