package exporter

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/kerneltest"
)

// TestPrivFileSinkFullDisk exports to a file on a 256 KiB tmpfs that fills
// up: lines that do not fit are counted as sink errors, no partial line is
// left in the file, Export never blocks, and writing resumes once space is
// freed.
func TestPrivFileSinkFullDisk(t *testing.T) {
	kerneltest.Require(t)
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=256k,mode=0700"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	ballast := filepath.Join(dir, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 160<<10), 0o600); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	cfg.NodeName = "node-a"
	cfg.Stdout = false
	cfg.File = filepath.Join(dir, "events.log")
	cfg.FileMaxSizeMB = 1 // larger than the file system: it fills before it rotates
	cfg.LostEventsInterval = Duration(time.Hour)
	e, err := New(cfg, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()

	// waitQueue waits until the file sink took everything queued.
	waitQueue := func() {
		deadline := time.Now().Add(10 * time.Second)
		for e.queues[0].lines.Load() > 0 {
			if time.Now().After(deadline) {
				t.Fatal("file sink stopped taking lines")
			}
			time.Sleep(time.Millisecond)
		}
	}
	exported := 0
	slowest := time.Duration(0)
	for exported < 5000 && e.Lost(ReasonSinkError) == 0 {
		for i := 0; i < 50; i++ {
			start := time.Now()
			e.Export(execEvent(proc(uint32(exported), "/usr/bin/some-binary", "--flag value --other-flag other-value", nil)))
			slowest = max(slowest, time.Since(start))
			exported++
		}
		waitQueue()
	}
	full := e.Lost(ReasonSinkError)
	if full == 0 {
		t.Fatalf("no sink errors after %d events on a full file system", exported)
	}
	// Keep exporting into the full disk for a while.
	for i := 0; i < 500; i++ {
		e.Export(execEvent(proc(uint32(exported), "/usr/bin/some-binary", "--flag value", nil)))
		exported++
	}
	waitQueue()
	if slowest > 100*time.Millisecond {
		t.Errorf("an Export took %v", slowest)
	}

	// Space returns: later events are written again.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	const marker = 1_000_000
	for i := 0; i < 100; i++ {
		e.Export(execEvent(proc(uint32(marker+i), "/usr/bin/after", "", nil)))
		exported++
	}
	waitQueue()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	f, err := os.Open(cfg.File)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines, markers := 0, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev struct {
			Exec *struct {
				Process struct{ PID int } `json:"process"`
			} `json:"process_exec"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %d is not a whole event: %q", lines+1, sc.Text())
		}
		if ev.Exec != nil && ev.Exec.Process.PID >= marker {
			markers++
		}
		lines++
	}
	if markers != 100 {
		t.Errorf("%d of the 100 events after the recovery are in the file", markers)
	}
	m := gather(t, reg)
	delivered := m[`vigil_export_sink_lines_total{sink="file"}`]
	total := m[`vigil_events_total{policy="",type="process_exec"}`] + m[`vigil_events_total{policy="",type="lost_events"}`]
	lost := m[`vigil_events_lost_total{reason="sink_error",sink="file"}`] + m[`vigil_events_lost_total{reason="queue_full",sink="file"}`]
	if float64(lines) != delivered || delivered+lost != total {
		t.Errorf("file has %d lines; delivered %v + lost %v, want %v exported", lines, delivered, lost, total)
	}
	t.Logf("%d events, %v lost to the full disk, %d lines in the file", exported, lost, lines)
}
