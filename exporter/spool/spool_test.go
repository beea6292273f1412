package spool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func rec(i int) []byte { return []byte(fmt.Sprintf("{\"n\":%d,\"pad\":\"%0100d\"}\n", i, i)) }

// drain reads and commits every pending record.
func drain(t *testing.T, s *Spool) []string {
	t.Helper()
	var out []string
	for s.Stats().Records > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		r, err := s.Next(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) && s.Stats().Records == 0 {
			break // the rest was damaged and skipped
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		out = append(out, string(r.Data))
		s.Commit()
	}
	return out
}

func want(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, string(rec(i)))
	}
	return out
}

func TestMemoryOnly(t *testing.T) {
	s, err := Open("", Options{MemoryBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for ; ; n++ {
		if err := s.Push(rec(n), 1); err != nil {
			if !errors.Is(err, ErrFull) {
				t.Fatalf("Push: %v, want ErrFull", err)
			}
			break
		}
	}
	if n != 1000/len(rec(0)) {
		t.Errorf("memory spool of 1000 bytes took %d records of %d bytes", n, len(rec(0)))
	}
	if st := s.Stats(); st.Lines != int64(n) || st.DiskBytes != 0 {
		t.Errorf("stats %+v", st)
	}
	if diff := cmp.Diff(want(0, n), drain(t, s)); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}

// TestOverflowToDisk pushes far more than memory holds: the oldest records
// come from memory, the rest from disk, in order, and delivered segments
// are deleted.
func TestOverflowToDisk(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{MemoryBytes: 2000, SegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < 300; i++ {
		if err := s.Push(rec(i), 1); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st.MemoryBytes == 0 || st.MemoryBytes > 2000 || st.Records != 300 {
		t.Errorf("stats after push: %+v", st)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) < 5 {
		t.Errorf("%d segment files, want several of 4 KiB", len(segs))
	}
	got := drain(t, s)
	// New records after the backlog go back to memory.
	for i := 300; i < 305; i++ {
		if err := s.Push(rec(i), 1); err != nil {
			t.Fatal(err)
		}
	}
	got = append(got, drain(t, s)...)
	if diff := cmp.Diff(want(0, 305), got); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
	segs, _ = filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) != 1 {
		t.Errorf("%d segment files left after delivery, want 1 (the one being written)", len(segs))
	}
}

func TestResumeAfterRestart(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{MemoryBytes: 1 << 20, SegmentBytes: 2048})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if err := s.Push(rec(i), 2); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 37; i++ {
		if _, err := s.Next(context.Background()); err != nil {
			t.Fatal(err)
		}
		s.Commit()
	}
	// Delivered but not committed when the agent stops: comes again.
	if _, err := s.Next(context.Background()); err != nil {
		t.Fatal(err)
	}
	if lost, err := s.Close(); err != nil || lost != 0 {
		t.Fatalf("Close: %d lines lost, %v", lost, err)
	}
	if _, err := s.Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Next after Close: %v, want ErrClosed", err)
	}

	s, err = Open(dir, Options{SegmentBytes: 2048})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if st := s.Stats(); st.Records != 63 || st.Lines != 126 {
		t.Errorf("stats after reopen: %+v, want 63 records of 2 lines", st)
	}
	if diff := cmp.Diff(want(37, 100), drain(t, s)); diff != "" {
		t.Errorf("resumed order (-want +got):\n%s", diff)
	}
}

func TestDamagedTail(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if err := s.Push(rec(i), 1); err != nil {
			t.Fatal(err)
		}
	}
	s.Close() // writes the records held in memory to a segment
	// A crash in the middle of the last write leaves half a record.
	path := firstSegment(t, dir)
	info, _ := os.Stat(path)
	if err := os.Truncate(path, info.Size()-20); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if st := s.Stats(); st.Records != 9 || st.Corrupt != 1 {
		t.Errorf("stats %+v, want 9 records and 1 damaged", st)
	}
	if diff := cmp.Diff(want(0, 9), drain(t, s)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// The segment is writable again after the cut.
	if err := s.Push(rec(42), 1); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want(42, 43), drain(t, s)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestFlippedByteIsSkipped(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{MemoryBytes: 1}) // everything read back from disk
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := s.Push(rec(i), 1); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.OpenFile(firstSegment(t, dir), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Damage the payload of the second record.
	off := int64(len(magic)) + int64(headerSize+len(rec(0))) + headerSize + 3
	if _, err := f.WriteAt([]byte{'#'}, off); err != nil {
		t.Fatal(err)
	}
	f.Close()
	got := drain(t, s)
	if diff := cmp.Diff(want(0, 1), got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if st := s.Stats(); st.Corrupt != 2 {
		t.Errorf("corrupt = %d, want 2 (the damaged record and the rest of its segment)", st.Corrupt)
	}
	s.Close()
}

// firstSegment returns the path of the oldest segment file in dir.
func firstSegment(t *testing.T, dir string) string {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) == 0 {
		t.Fatal("no segment file")
	}
	return segs[0] // names sort by number
}

// TestSpillTwiceThenRestart: a backlog spills to disk and is delivered,
// memory fills and spills again, then the agent stops with records both in
// memory and on disk. The next run gets all of them, in order, once.
func TestSpillTwiceThenRestart(t *testing.T) {
	dir := t.TempDir()
	opts := Options{MemoryBytes: 1000, SegmentBytes: 1500}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	push := func(from, to int) {
		for i := from; i < to; i++ {
			if err := s.Push(rec(i), 1); err != nil {
				t.Fatal(err)
			}
		}
	}
	take := func(n int) []string {
		var out []string
		for i := 0; i < n; i++ {
			r, err := s.Next(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(r.Data))
			s.Commit()
		}
		return out
	}
	push(0, 40) // memory, then disk
	got := take(40)
	if st := s.Stats(); st.DiskBytes != 0 || st.Records != 0 {
		t.Fatalf("after delivering the backlog: %+v", st)
	}
	push(40, 80) // memory again, then a second spill
	got = append(got, take(3)...)
	if st := s.Stats(); st.MemoryBytes == 0 || st.DiskBytes == 0 {
		t.Fatalf("want records in memory and on disk: %+v", st)
	}
	if lost, err := s.Close(); err != nil || lost != 0 {
		t.Fatalf("Close: %d lost, %v", lost, err)
	}
	s, err = Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got = append(got, drain(t, s)...)
	if diff := cmp.Diff(want(0, 80), got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestMemoryOnlyCloseCountsLost(t *testing.T) {
	s, _ := Open("", Options{})
	s.Push(rec(0), 3)
	s.Push(rec(1), 4)
	if lost, err := s.Close(); lost != 7 || err != nil {
		t.Errorf("Close = %d, %v; want 7 lines lost", lost, err)
	}
}

func TestDiskBound(t *testing.T) {
	s, err := Open(t.TempDir(), Options{MemoryBytes: 100, DiskBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := 0
	for ; n < 100; n++ {
		if err := s.Push(rec(n), 1); err != nil {
			if !errors.Is(err, ErrFull) {
				t.Fatalf("Push: %v", err)
			}
			break
		}
	}
	if max := 1000 / (headerSize + len(rec(0))); n != max {
		t.Errorf("took %d records, want %d", n, max)
	}
	drain(t, s)
	if err := s.Push(rec(0), 1); err != nil {
		t.Errorf("Push after draining: %v", err)
	}
}

func TestNextWaits(t *testing.T) {
	s, _ := Open("", Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next on empty spool: %v", err)
	}
	go func() {
		time.Sleep(10 * time.Millisecond)
		s.Push([]byte("late\n"), 1)
	}()
	r, err := s.Next(context.Background())
	if err != nil || string(r.Data) != "late\n" {
		t.Fatalf("Next = %q, %v", r.Data, err)
	}
}

func TestOpenRefusesUnwritableDir(t *testing.T) {
	_, err := Open("/proc/vigil-spool", Options{})
	if err == nil {
		t.Fatal("Open under /proc succeeded")
	}
}

// FuzzDecodeRecord feeds arbitrary bytes to the record parser.
func FuzzDecodeRecord(f *testing.F) {
	good := make([]byte, headerSize)
	putHeader(good, []byte("{}\n"), 1)
	f.Add(append(good, "{}\n"...))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		payload, count, size, err := DecodeRecord(b)
		if err != nil {
			return
		}
		again := make([]byte, headerSize)
		putHeader(again, payload, count)
		again = append(again, payload...)
		if string(again) != string(b[:size]) {
			t.Fatalf("re-encoding %q gave %q", b[:size], again)
		}
	})
}

// FuzzSegmentFile opens a spool whose segment file holds arbitrary bytes:
// Open must not fail or panic, and every record handed out must be one
// whose checksum verified.
func FuzzSegmentFile(f *testing.F) {
	rec := make([]byte, headerSize)
	putHeader(rec, []byte("line\n"), 1)
	rec = append(rec, "line\n"...)
	f.Add(append([]byte(magic), rec...))
	f.Add([]byte(magic + "garbage"))
	f.Add([]byte("not a spool"))
	f.Fuzz(func(t *testing.T, content []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segName(1)), content, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dir, Options{MemoryBytes: 1})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		for i := 0; s.Stats().Records > 0 && i < 1000; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			r, err := s.Next(ctx)
			cancel()
			if err != nil {
				break
			}
			if len(r.Data) == 0 {
				t.Fatal("empty record")
			}
			s.Commit()
		}
		if err := s.Push([]byte("after\n"), 1); err != nil {
			t.Fatalf("Push after recovery: %v", err)
		}
	})
}
