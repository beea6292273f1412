package spool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"
)

// Options bound a spool. Zero values take the defaults.
type Options struct {
	// MemoryBytes bounds the records kept in memory (default 16 MiB).
	MemoryBytes int64
	// DiskBytes bounds the records waiting on disk (default 1 GiB). Used
	// only with a directory.
	DiskBytes int64
	// SegmentBytes is the size at which a new segment file is started
	// (default 8 MiB). Segments are deleted once delivered.
	SegmentBytes int64
	// Log receives what Open changes in the directory (its mode); may be
	// nil.
	Log logrus.FieldLogger
}

func (o *Options) defaults() {
	if o.MemoryBytes <= 0 {
		o.MemoryBytes = 16 << 20
	}
	if o.DiskBytes <= 0 {
		o.DiskBytes = 1 << 30
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 8 << 20
	}
}

// Record is one queued batch.
type Record struct {
	Data  []byte
	Count int // lines in Data
}

// Stats describe what a spool holds.
type Stats struct {
	Records     int
	Lines       int64
	MemoryBytes int64
	DiskBytes   int64
	// Corrupt counts records found damaged on disk and skipped.
	Corrupt int
}

// ErrFull is returned by Push when the record does not fit.
var ErrFull = errors.New("spool full")

// ErrClosed is returned after Close.
var ErrClosed = errors.New("spool closed")

type segment struct {
	seq      uint64
	size     int64
	records  int
	consumed int
}

// Spool is a FIFO of records. Push may be called from any goroutine; Next
// and Commit from one consumer.
type Spool struct {
	dir  string
	opts Options

	mu     sync.Mutex
	ready  chan struct{}
	closed bool

	mem      [][]byte // payloads of the oldest pending records
	memCount []int
	memBytes int64
	diskOnly int // pending records not in memory (all newer than mem)
	records  int
	lines    int64
	free     [][]byte

	segs      []segment // segs[0] is read, segs[len-1] written
	w, r      *os.File
	rOff      int64
	diskBytes int64
	corrupt   int
	wbuf      []byte
	rbuf      []byte

	head     *Record
	headSize int64
	headMem  bool
}

const cursorName = "cursor"

// firstSeq numbers the first segment of a new spool; lower numbers are
// left for the segments Close writes in front of it.
const firstSeq = 1 << 32

// Open returns a spool. With dir empty it keeps records in memory only;
// otherwise it creates dir (0700) if needed, or makes an existing one 0700
// (refusing a directory of another user), and resumes any records a
// previous run left there.
func Open(dir string, opts Options) (*Spool, error) {
	opts.defaults()
	s := &Spool{dir: dir, opts: opts, ready: make(chan struct{}, 1)}
	if dir == "" {
		return s, nil
	}
	if err := prepareDir(dir, opts.Log); err != nil {
		return nil, err
	}
	if err := s.load(); err != nil {
		s.closeFiles()
		return nil, err
	}
	return s, nil
}

func segName(seq uint64) string { return fmt.Sprintf("%016x.seg", seq) }

// load finds the segments and the cursor of a previous run, checks every
// record header and opens the files.
func (s *Spool) load() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	var seqs []uint64
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".seg") {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, ".seg"), 16, 64)
		if err != nil {
			continue
		}
		seqs = append(seqs, seq)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	curSeq, curOff := s.readCursor()
	for _, seq := range seqs {
		path := filepath.Join(s.dir, segName(seq))
		if seq < curSeq {
			os.Remove(path) // delivered before the last stop
			continue
		}
		start := int64(len(magic))
		if seq == curSeq {
			start = curOff
		}
		seg, err := s.scan(path, seq, start)
		if err != nil {
			return err
		}
		if len(s.segs) == 0 {
			s.rOff = start
		}
		s.segs = append(s.segs, seg)
	}
	if len(s.segs) == 0 {
		if err := s.newSegment(firstSeq); err != nil {
			return err
		}
		s.rOff = int64(len(magic))
	} else {
		last := s.segs[len(s.segs)-1]
		w, err := os.OpenFile(filepath.Join(s.dir, segName(last.seq)), os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		s.w = w
	}
	for i := range s.segs {
		s.records += s.segs[i].records
	}
	s.diskOnly = s.records
	if s.records == 0 && (len(s.segs) > 1 || s.segs[0].size > int64(len(magic))) {
		if err := s.resetSegments(); err != nil {
			return err
		}
		s.writeCursor()
	}
	if s.records > 0 {
		s.signal()
	}
	return nil
}

func (s *Spool) readCursor() (uint64, int64) {
	b, err := os.ReadFile(filepath.Join(s.dir, cursorName))
	if err != nil {
		return 0, 0
	}
	var seq uint64
	var off int64
	if _, err := fmt.Sscanf(string(b), "%d %d", &seq, &off); err != nil || off < int64(len(magic)) {
		return 0, 0
	}
	return seq, off
}

// scan checks the records of a segment from start and truncates a damaged
// tail, as a crash in the middle of a write leaves.
func (s *Spool) scan(path string, seq uint64, start int64) (segment, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return segment{}, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return segment{}, fmt.Errorf("spool: %w", err)
	}
	seg := segment{seq: seq, size: info.Size()}
	m := make([]byte, len(magic))
	if _, err := f.ReadAt(m, 0); err != nil || string(m) != magic {
		// Not one of ours, or cut before the magic: start it afresh.
		s.corrupt++
		if err := f.Truncate(0); err != nil {
			return segment{}, fmt.Errorf("spool: %w", err)
		}
		if _, err := f.WriteAt([]byte(magic), 0); err != nil {
			return segment{}, fmt.Errorf("spool: %w", err)
		}
		seg.size = int64(len(magic))
		return seg, nil
	}
	var hdr [headerSize]byte
	off := start
	for off < seg.size {
		if _, err := f.ReadAt(hdr[:], off); err != nil {
			break
		}
		n, count, _, err := parseHeader(hdr[:])
		if err != nil || off+headerSize+int64(n) > seg.size {
			break
		}
		off += headerSize + int64(n)
		seg.records++
		s.lines += int64(count)
	}
	if off != seg.size {
		s.corrupt++
		if err := f.Truncate(off); err != nil {
			return segment{}, fmt.Errorf("spool: truncate damaged %s: %w", path, err)
		}
		seg.size = off
	}
	s.diskBytes += seg.size - start
	return seg, nil
}

func (s *Spool) newSegment(seq uint64) error {
	path := filepath.Join(s.dir, segName(seq))
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if _, err := w.Write([]byte(magic)); err != nil {
		w.Close()
		os.Remove(path)
		return fmt.Errorf("spool: %w", err)
	}
	if s.w != nil {
		s.w.Close()
	}
	s.w = w
	s.segs = append(s.segs, segment{seq: seq, size: int64(len(magic))})
	return nil
}

func (s *Spool) signal() {
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// Give is Push without the copy: the spool takes data and hands the buffer
// back through Buffer once the record is delivered. The caller must not use
// data after the call, whatever the result.
func (s *Spool) Give(data []byte, count int) error {
	return s.push(data, count, true)
}

// Buffer returns an empty buffer of at least n bytes' capacity, reusing
// those of delivered records.
func (s *Spool) Buffer(n int) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.getBuf(n)
}

// Push appends a copy of data, holding count lines. It returns ErrFull when
// the memory bound (without a directory) or the disk bound is reached, and
// the write error when the disk refuses the record.
func (s *Spool) Push(data []byte, count int) error {
	return s.push(data, count, false)
}

func (s *Spool) push(data []byte, count int, owned bool) error {
	if len(data) == 0 {
		return nil
	}
	if len(data) > MaxRecord {
		return fmt.Errorf("spool: record of %d bytes exceeds %d: %w", len(data), MaxRecord, ErrFull)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	size := int64(headerSize + len(data))
	// Memory while nothing waits on disk (memory holds the older records);
	// once memory is full, disk until the disk backlog is delivered.
	if s.diskOnly == 0 && s.memBytes+int64(len(data)) <= s.opts.MemoryBytes {
		if !owned {
			data = append(s.getBuf(len(data)), data...)
		}
		s.mem = append(s.mem, data)
		s.memCount = append(s.memCount, count)
		s.memBytes += int64(len(data))
	} else {
		if s.dir == "" || s.diskBytes+size > s.opts.DiskBytes {
			return ErrFull
		}
		if err := s.write(data, count); err != nil {
			return err
		}
		s.diskOnly++
		if owned {
			s.putBuf(data)
		}
	}
	s.records++
	s.lines += int64(count)
	s.signal()
	return nil
}

func (s *Spool) getBuf(n int) []byte {
	for i := len(s.free) - 1; i >= 0; i-- {
		if cap(s.free[i]) >= n {
			b := s.free[i][:0]
			s.free = append(s.free[:i], s.free[i+1:]...)
			return b
		}
	}
	return make([]byte, 0, n)
}

func (s *Spool) putBuf(b []byte) {
	if len(s.free) < 8 {
		s.free = append(s.free, b)
	}
}

// write appends one framed record to the write segment, starting a new
// segment when the current one is full. A failed write is cut off so the
// segment stays readable.
func (s *Spool) write(data []byte, count int) error {
	last := &s.segs[len(s.segs)-1]
	if last.size >= s.opts.SegmentBytes && last.size > int64(len(magic)) {
		if err := s.newSegment(last.seq + 1); err != nil {
			return err
		}
		last = &s.segs[len(s.segs)-1]
	}
	s.wbuf = append(s.wbuf[:0], make([]byte, headerSize)...)
	putHeader(s.wbuf, data, count)
	s.wbuf = append(s.wbuf, data...)
	if _, err := s.w.Write(s.wbuf); err != nil {
		if terr := s.w.Truncate(last.size); terr != nil {
			return fmt.Errorf("spool: write: %w (and cutting the partial record failed: %v)", err, terr)
		}
		return fmt.Errorf("spool: write: %w", err)
	}
	size := int64(len(s.wbuf))
	last.size += size
	last.records++
	s.diskBytes += size
	if cap(s.wbuf) > 4<<20 {
		s.wbuf = nil
	}
	return nil
}

// Next returns the oldest record, waiting for one until ctx ends. It
// returns the same record until Commit. Data is valid until Commit.
func (s *Spool) Next(ctx context.Context) (Record, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return Record{}, ErrClosed
		}
		if s.head != nil {
			r := *s.head
			s.mu.Unlock()
			return r, nil
		}
		if s.records > 0 {
			r, err := s.loadHead()
			s.mu.Unlock()
			if err != nil {
				continue // a damaged record was skipped; try the next
			}
			return r, nil
		}
		s.mu.Unlock()
		select {
		case <-s.ready:
		case <-ctx.Done():
			return Record{}, ctx.Err()
		}
	}
}

func (s *Spool) loadHead() (Record, error) {
	if len(s.mem) > 0 {
		s.head = &Record{Data: s.mem[0], Count: s.memCount[0]}
		s.headMem = true
		s.headSize = int64(headerSize + len(s.mem[0]))
		return *s.head, nil
	}
	for s.rOff >= s.segs[0].size && len(s.segs) > 1 {
		s.dropReadSegment()
	}
	if s.r == nil {
		r, err := os.Open(filepath.Join(s.dir, segName(s.segs[0].seq)))
		if err != nil {
			return Record{}, s.skipSegment(err)
		}
		s.r = r
	}
	var hdr [headerSize]byte
	if _, err := s.r.ReadAt(hdr[:], s.rOff); err != nil {
		return Record{}, s.skipSegment(err)
	}
	n, _, _, err := parseHeader(hdr[:])
	if err != nil {
		return Record{}, s.skipSegment(err)
	}
	if cap(s.rbuf) < headerSize+n {
		s.rbuf = make([]byte, headerSize+n)
	}
	buf := s.rbuf[:headerSize+n]
	if _, err := s.r.ReadAt(buf, s.rOff); err != nil && !errors.Is(err, io.EOF) {
		return Record{}, s.skipSegment(err)
	}
	payload, count, size, err := DecodeRecord(buf)
	if err != nil {
		return Record{}, s.skipSegment(err)
	}
	s.head = &Record{Data: payload, Count: count}
	s.headMem = false
	s.headSize = int64(size)
	return *s.head, nil
}

// skipSegment gives up on the rest of the read segment after damage.
func (s *Spool) skipSegment(cause error) error {
	seg := &s.segs[0]
	lost := seg.records - seg.consumed
	s.corrupt += lost
	s.records -= lost
	s.diskOnly -= lost
	s.diskBytes -= seg.size - s.rOff
	seg.consumed = seg.records
	s.rOff = seg.size
	if len(s.segs) > 1 {
		s.dropReadSegment()
	}
	s.writeCursor()
	return fmt.Errorf("spool: skipped %d damaged records: %w", lost, cause)
}

func (s *Spool) dropReadSegment() {
	if s.r != nil {
		s.r.Close()
		s.r = nil
	}
	os.Remove(filepath.Join(s.dir, segName(s.segs[0].seq)))
	s.segs = s.segs[1:]
	s.rOff = int64(len(magic))
}

// Commit removes the record Next returned.
func (s *Spool) Commit() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.head == nil {
		return
	}
	s.records--
	s.lines -= int64(s.head.Count)
	wasMem := s.headMem
	s.head = nil
	if wasMem {
		s.putBuf(s.mem[0])
		s.mem[0] = nil
		s.mem = s.mem[1:]
		s.memCount = s.memCount[1:]
		s.memBytes -= s.headSize - headerSize
		return
	}
	s.diskOnly--
	s.rOff += s.headSize
	s.diskBytes -= s.headSize
	s.segs[0].consumed++
	if s.rOff >= s.segs[0].size && len(s.segs) > 1 {
		s.dropReadSegment()
	}
	if s.diskOnly == 0 {
		// Backlog delivered: start the next spill in a fresh segment, so
		// that disk records always start at the first segment's start
		// while memory holds records (see Close).
		if err := s.resetSegments(); err != nil {
			s.corrupt++ // the files stay; the next Open cleans up
		}
	}
	s.writeCursor()
}

// resetSegments removes every (delivered) segment and starts a new one.
func (s *Spool) resetSegments() error {
	next := s.segs[len(s.segs)-1].seq + 1
	s.closeFiles()
	for _, seg := range s.segs {
		os.Remove(filepath.Join(s.dir, segName(seg.seq)))
	}
	s.segs = nil
	s.diskBytes = 0
	if err := s.newSegment(next); err != nil {
		return err
	}
	s.rOff = int64(len(magic))
	return nil
}

func (s *Spool) writeCursor() {
	tmp := filepath.Join(s.dir, cursorName+".tmp")
	data := strconv.FormatUint(s.segs[0].seq, 10) + " " + strconv.FormatInt(s.rOff, 10) + "\n"
	if err := os.WriteFile(tmp, []byte(data), 0o600); err == nil {
		os.Rename(tmp, filepath.Join(s.dir, cursorName))
	}
}

// Stats returns what the spool holds.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Records: s.records, Lines: s.lines, MemoryBytes: s.memBytes, DiskBytes: s.diskBytes, Corrupt: s.corrupt}
}

// Close writes the records held in memory to disk, in front of those
// already there, and closes the files: the next Open resumes with all of
// them. It returns the number of lines it could not keep (all pending ones
// without a directory).
func (s *Spool) Close() (lostLines int64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, nil
	}
	s.closed = true
	defer s.signal()
	if s.dir == "" {
		s.closeFiles()
		return s.lines, nil
	}
	if len(s.mem) > 0 {
		if err := s.persistMemory(); err != nil {
			var lost int64
			for _, c := range s.memCount {
				lost += int64(c)
			}
			s.closeFiles()
			return lost, err
		}
	}
	if s.w != nil {
		err = s.w.Sync()
	}
	s.closeFiles()
	return 0, err
}

// persistMemory writes the memory records to a new segment numbered before
// the first one and points the cursor at it. While memory holds records the
// reader has not started on the disk ones, which begin at the first
// segment's start (see Commit), so the order is kept.
func (s *Spool) persistMemory() error {
	seq := s.segs[0].seq - 1
	path := filepath.Join(s.dir, segName(seq))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("spool: keep memory records: %w", err)
	}
	buf := []byte(magic)
	for i, data := range s.mem {
		hdr := make([]byte, headerSize)
		putHeader(hdr, data, s.memCount[i])
		buf = append(append(buf, hdr...), data...)
	}
	if _, err := f.Write(buf); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("spool: keep memory records: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("spool: keep memory records: %w", err)
	}
	f.Close()
	s.segs = append([]segment{{seq: seq, size: int64(len(buf)), records: len(s.mem)}}, s.segs...)
	s.rOff = int64(len(magic))
	s.writeCursor()
	return nil
}

func (s *Spool) closeFiles() {
	if s.w != nil {
		s.w.Close()
		s.w = nil
	}
	if s.r != nil {
		s.r.Close()
		s.r = nil
	}
}
