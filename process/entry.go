package process

import (
	"encoding/base64"
	"strconv"
	"unsafe"

	"github.com/vigilsec/vigil/event"
)

// entry is one process in the cache. Its Process value is published to
// events and never modified after insertion; the other fields belong to the
// cache.
type entry struct {
	proc   event.Process
	parent *entry
	// exitedAt is the cache clock when the exit was seen, 0 while alive.
	exitedAt int64
	// status of the exit, for events that arrive after it.
	exitStatus event.Exit
	// queued is set once the entry sits in the exited queue.
	queued bool
	// setuid and setgid back the pointers of proc.BinaryProperties.
	setuid, setgid uint32
}

// Sized variants of an entry with trailing storage for its strings, so that
// a process costs one allocation. Strings of the Process point into buf.
type entry256 struct {
	entry
	buf [256]byte
}
type entry1k struct {
	entry
	buf [1024]byte
}
type entry4k struct {
	entry
	buf [4096]byte
}
type entry16k struct {
	entry
	buf [16384]byte
}

// newEntry allocates an entry with room for n bytes of strings and returns
// the entry and its storage.
func newEntry(n int) (*entry, []byte) {
	switch {
	case n <= 256:
		e := new(entry256)
		return &e.entry, e.buf[:0:n]
	case n <= 1024:
		e := new(entry1k)
		return &e.entry, e.buf[:0:n]
	case n <= 4096:
		e := new(entry4k)
		return &e.entry, e.buf[:0:n]
	case n <= 16384:
		e := new(entry16k)
		return &e.entry, e.buf[:0:n]
	}
	return new(entry), make([]byte, 0, n)
}

// arena hands out strings that live in an entry's storage.
type arena struct{ buf []byte }

// add copies b into the arena and returns it as a string.
func (a *arena) add(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	start := len(a.buf)
	a.buf = append(a.buf, b...)
	return unsafe.String(&a.buf[start], len(b))
}

// addString is add for a string.
func (a *arena) addString(s string) string {
	if len(s) == 0 {
		return ""
	}
	start := len(a.buf)
	a.buf = append(a.buf, s...)
	return unsafe.String(&a.buf[start], len(s))
}

// execIDLen is the length of an exec id for a node name of n bytes.
func execIDLen(node string) int {
	// node:ktime:pid with a 20-digit ktime and a 10-digit pid at most.
	return base64.StdEncoding.EncodedLen(len(node) + 2 + 20 + 10)
}

// appendExecID writes the exec id of (node, ktime, pid) into the arena:
// base64 of "node:ktime:pid", where ktime is nanoseconds since the epoch of
// the process's start as the cache clocks it (boot time plus kernel time), so
// that ids are unique across the node and across reboots.
func (a *arena) appendExecID(node string, ktime uint64, pid uint32) string {
	var raw [128]byte
	r := append(raw[:0], node...)
	r = append(r, ':')
	r = strconv.AppendUint(r, ktime, 10)
	r = append(r, ':')
	r = strconv.AppendUint(r, uint64(pid), 10)
	n := base64.StdEncoding.EncodedLen(len(r))
	start := len(a.buf)
	if cap(a.buf)-start < n {
		// Should not happen: sizes are computed with execIDLen.
		return base64.StdEncoding.EncodeToString(r)
	}
	a.buf = a.buf[:start+n]
	base64.StdEncoding.Encode(a.buf[start:], r)
	return unsafe.String(&a.buf[start], n)
}
