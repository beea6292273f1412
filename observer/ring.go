package observer

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ring reads a BPF ring buffer map in place: records are handed to the
// handler straight from the mapped ring, and the reader waits for records
// through the Go runtime's poller, as for a socket, so that a waiting
// reader holds no thread in a system call.
//
// The layout is the kernel's (kernel/bpf/ringbuf.c): a consumer page the
// reader writes, a producer page and the data, each record behind an 8-byte
// header whose length word carries a busy and a discard bit.
//
// The kernel lets the data be mapped twice in a row, so that every record
// is contiguous; the reader maps it once, since each mapping counts the
// ring's pages again in the agent's resident memory (an 8 MiB ring showed
// as 16 MiB), and copies the rare record that wraps around the end.
type ring struct {
	cons    []byte // consumer page (read-write)
	prodMap []byte // producer page and data (read-only)
	data    []byte
	wrap    []byte // a record that wraps around, copied
	mask    uint64
	consPos *uint64
	prodPos *uint64
	file    *os.File // the map's fd, non-blocking, in the runtime's poller
	raw     syscall.RawConn
	// stopping is set by interrupt, so that a wait that sets its deadline
	// after the interrupt's still returns.
	stopping atomic.Bool
}

const (
	ringHeaderSize = 8
	ringBusyBit    = 1 << 31
	ringDiscardBit = 1 << 30
)

func openRing(m *ebpf.Map) (_ *ring, err error) {
	if m.Type() != ebpf.RingBuf {
		return nil, fmt.Errorf("map %s is a %s, not a ring buffer", m.String(), m.Type())
	}
	size := int(m.MaxEntries())
	page := os.Getpagesize()
	fd, err := unix.FcntlInt(uintptr(m.FD()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("duplicate ring buffer fd: %w", err)
	}
	r := &ring{}
	defer func() {
		if err != nil {
			r.close()
			if r.file == nil {
				unix.Close(fd)
			}
		}
	}()
	if r.cons, err = unix.Mmap(fd, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return nil, fmt.Errorf("map the ring buffer's consumer page: %w", err)
	}
	if r.prodMap, err = unix.Mmap(fd, int64(page), page+size, unix.PROT_READ, unix.MAP_SHARED); err != nil {
		return nil, fmt.Errorf("map the ring buffer's data: %w", err)
	}
	r.data = r.prodMap[page:]
	r.mask = uint64(size - 1)
	r.consPos = (*uint64)(unsafe.Pointer(unsafe.SliceData(r.cons)))
	r.prodPos = (*uint64)(unsafe.Pointer(unsafe.SliceData(r.prodMap)))
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, fmt.Errorf("ring buffer fd: %w", err)
	}
	// A non-blocking fd becomes a pollable file: its readiness is waited
	// for by the runtime's poller.
	r.file = os.NewFile(uintptr(fd), "ringbuf")
	if r.raw, err = r.file.SyscallConn(); err != nil {
		return nil, err
	}
	return r, nil
}

// available returns the bytes of records not read yet.
func (r *ring) available() uint64 {
	return atomic.LoadUint64(r.prodPos) - atomic.LoadUint64(r.consPos)
}

// read hands every committed record to h, in order, and returns how many
// it read. It stops at a record still being written.
func (r *ring) read(h func([]byte)) (int, error) {
	cons := atomic.LoadUint64(r.consPos)
	prod := atomic.LoadUint64(r.prodPos)
	n := 0
	for cons < prod {
		if prod-cons < ringHeaderSize {
			return n, errors.New("ring buffer: truncated record header")
		}
		off := cons & r.mask
		// The length word is read atomically: it is what the kernel's
		// commit (an xchg) publishes, after the data.
		hdr := atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.data[off])))
		if hdr&ringBusyBit != 0 {
			break
		}
		l := uint64(hdr &^ (ringBusyBit | ringDiscardBit))
		next := cons + (ringHeaderSize+l+7)&^7
		if next > prod {
			return n, errors.New("ring buffer: record runs past the producer position")
		}
		if hdr&ringDiscardBit == 0 {
			h(r.record(off+ringHeaderSize, l))
			n++
		}
		cons = next
		atomic.StoreUint64(r.consPos, cons)
	}
	return n, nil
}

// record returns the l bytes of a record at offset start of the data,
// which may lie past its end (the record wraps around).
func (r *ring) record(start, l uint64) []byte {
	size := uint64(len(r.data))
	start &= r.mask
	if start+l <= size {
		return r.data[start : start+l : start+l]
	}
	r.wrap = append(r.wrap[:0], r.data[start:]...)
	r.wrap = append(r.wrap, r.data[:start+l-size]...)
	return r.wrap
}

// wait returns once records may be available, when the deadline passes
// (os.ErrDeadlineExceeded), or when interrupt is called. A zero deadline
// waits for a wakeup of the programs only.
func (r *ring) wait(deadline time.Time) error {
	if err := r.file.SetReadDeadline(deadline); err != nil {
		return err
	}
	if r.stopping.Load() {
		return os.ErrDeadlineExceeded
	}
	return r.raw.Read(func(uintptr) bool { return r.available() > 0 })
}

// interrupt makes a waiting wait return, and every later one.
func (r *ring) interrupt() {
	r.stopping.Store(true)
	r.file.SetReadDeadline(time.Now())
}

func (r *ring) close() {
	if r.file != nil {
		r.file.Close()
	}
	if r.prodMap != nil {
		unix.Munmap(r.prodMap)
		r.prodMap = nil
	}
	if r.cons != nil {
		unix.Munmap(r.cons)
		r.cons = nil
	}
}
