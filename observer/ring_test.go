package observer

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeRing is a ring over memory of the test's, laid out as the kernel
// lays out a ring buffer's data, mapped once.
type fakeRing struct {
	r          *ring
	cons, prod uint64
}

func newFakeRing(size int) *fakeRing {
	f := &fakeRing{}
	f.r = &ring{data: make([]byte, size), mask: uint64(size - 1), consPos: &f.cons, prodPos: &f.prod}
	return f
}

// write appends a record as the kernel does: header, then the data, with
// the data wrapping around the end of the ring.
func (f *fakeRing) write(rec []byte) {
	size := uint64(len(f.r.data))
	off := f.prod & f.r.mask
	binary.NativeEndian.PutUint32(f.r.data[off:], uint32(len(rec)))
	for i, b := range rec {
		f.r.data[(off+ringHeaderSize+uint64(i))%size] = b
	}
	f.prod += (ringHeaderSize + uint64(len(rec)) + 7) &^ 7
}

// Records that wrap around the end of the ring (mapped once) reach the
// handler whole and in order, as those that do not.
func TestRingRecordsWrapAround(t *testing.T) {
	f := newFakeRing(256)
	var want, got []string
	for round := range 20 {
		for i := range 3 {
			rec := []byte(fmt.Sprintf("round %02d record %d: %s", round, i, "0123456789abcdefghij"[:round]))
			want = append(want, string(rec))
			f.write(rec)
		}
		n, err := f.r.read(func(b []byte) { got = append(got, string(b)) })
		if err != nil || n != 3 {
			t.Fatalf("round %d: read %d records, %v; want 3", round, n, err)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records (-written +read):\n%s", diff)
	}
	if f.cons != f.prod {
		t.Errorf("consumer at %d, producer at %d: want every record consumed", f.cons, f.prod)
	}
	if f.r.wrap == nil {
		t.Error("no record wrapped around: the test does not exercise the wrap")
	}
}
