package sink

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// tally records what a sink reports through its hooks.
type tally struct {
	delivered atomic.Int64
	mu        sync.Mutex
	lost      map[string]int
}

func (c *tally) hooks() Hooks {
	return Hooks{
		Delivered: func(n int) { c.delivered.Add(int64(n)) },
		Lost: func(reason string, n int) {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.lost == nil {
				c.lost = map[string]int{}
			}
			c.lost[reason] += n
		},
	}
}

func (c *tally) lostBy(reason string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lost[reason]
}

// line returns the i-th test line, newline included.
func line(i int) string {
	return fmt.Sprintf(`{"process_exec":{"process":{"pid":%d,"binary":"/bin/true","arguments":"%0200d"}},"node_name":"n","time":"2026-11-22T07:18:21.000000000Z"}`+"\n", i, i)
}

// chunk returns lines [from, to) as one chunk.
func chunk(from, to int) []byte {
	var b bytes.Buffer
	for i := from; i < to; i++ {
		b.WriteString(line(i))
	}
	return b.Bytes()
}

// pidsOf parses NDJSON and returns the pid of every line, failing on a line
// that is not a whole JSON object.
func pidsOf(t *testing.T, data []byte) []int {
	t.Helper()
	var out []int
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev struct {
			ProcessExec struct {
				Process struct{ PID int } `json:"process"`
			} `json:"process_exec"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %q is not a whole event: %v", sc.Text(), err)
		}
		out = append(out, ev.ProcessExec.Process.PID)
	}
	return out
}

func seq(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	n := min(w.n, len(p))
	return n, errors.New("broken pipe")
}

func TestWriter(t *testing.T) {
	var buf bytes.Buffer
	var c tally
	s := NewWriter("stdout", &buf, c.hooks())
	s.Write(context.Background(), chunk(0, 3), 3)
	if diff := cmp.Diff(seq(0, 3), pidsOf(t, buf.Bytes())); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// A writer that takes one and a half lines then fails.
	var c2 tally
	s = NewWriter("stdout", &failingWriter{n: len(line(0)) * 3 / 2}, c2.hooks())
	s.Write(context.Background(), chunk(0, 4), 4)
	if c2.delivered.Load() != 1 || c2.lostBy(ReasonSinkError) != 3 {
		t.Errorf("delivered %d, lost %v; want 1 and 3", c2.delivered.Load(), c2.lost)
	}
}

// TestFileRotationUnderLoad writes 6 MiB through a 1 MiB file while a
// 20ms timer rotates it too: every line is in exactly one file, whole, and
// the files read in order give the lines in order.
func TestFileRotationUnderLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.log")
	var c tally
	s, err := NewFile(FileOptions{Path: path, MaxSizeMB: 1, RotationInterval: 20 * time.Millisecond, Perm: 0o640}, c.hooks())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	const total = 24000 // about 6 MiB
	for i := 0; i < total; i += 100 {
		s.Write(ctx, chunk(i, i+100), 100)
		if i%2000 == 0 {
			time.Sleep(5 * time.Millisecond) // let the timer fire between writes
		}
	}
	cancel()
	<-done
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	backups, err := Backups(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(backups) < 6 {
		t.Errorf("%d rotated files, want at least 6 for 6 MiB in 1 MiB files", len(backups))
	}
	var all []byte
	for _, f := range append(backups, path) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > 0 && data[len(data)-1] != '\n' {
			t.Errorf("%s ends in the middle of a line", f)
		}
		if len(data) > 1<<20 {
			t.Errorf("%s has %d bytes, more than the 1 MiB limit", f, len(data))
		}
		info, _ := os.Stat(f)
		if info.Mode().Perm() != 0o640 {
			t.Errorf("%s has mode %v, want 0640", f, info.Mode().Perm())
		}
		all = append(all, data...)
	}
	if diff := cmp.Diff(seq(0, total), pidsOf(t, all)); diff != "" {
		t.Errorf("lines across files (-want +got):\n%s", diff)
	}
	if c.delivered.Load() != total {
		t.Errorf("delivered %d, want %d", c.delivered.Load(), total)
	}
}

func TestFileCompressAndBackups(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.log")
	s, err := NewFile(FileOptions{Path: path, MaxSizeMB: 1, MaxBackups: 2, Compress: true}, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		s.Write(context.Background(), chunk(i*100, i*100+100), 100)
		s.log.Rotate()
	}
	s.Close(context.Background())
	// Compression and pruning run in the background.
	deadline := time.Now().Add(5 * time.Second)
	for {
		backups, _ := Backups(path)
		gz := 0
		for _, b := range backups {
			if strings.HasSuffix(b, ".gz") {
				gz++
			}
		}
		if len(backups) == 2 && gz == 2 {
			f, _ := os.Open(backups[1])
			zr, err := gzip.NewReader(f)
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(zr)
			f.Close()
			if diff := cmp.Diff(seq(400, 500), pidsOf(t, data)); diff != "" {
				t.Errorf("newest backup (-want +got):\n%s", diff)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("backups %v: want 2, compressed", backups)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFileUnwritable(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{filepath.Join(dir, "missing", "events.log"), dir} {
		if _, err := NewFile(FileOptions{Path: p}, Hooks{}); err == nil {
			t.Errorf("NewFile(%s) succeeded", p)
		}
	}
}
