package abi

import (
	"fmt"
	"unsafe"
)

// The string key of a tracing-policy set holds exactly GenStrMax bytes.
var _ = [1]struct{}{}[GenStrMax-len(GenStrKey{}.Data)]

// ShortRecordError reports a record shorter than the fixed layout of its
// opcode.
type ShortRecordError struct {
	Op        uint8
	Len, Want int
}

func (e *ShortRecordError) Error() string {
	return fmt.Sprintf("record of opcode %d is %d bytes, want at least %d", e.Op, e.Len, e.Want)
}

// view returns the fixed part of rec as a *T, without copying. Records of
// the ring buffer are 8-byte aligned; the pointer is valid as long as rec.
func view[T any](op uint8, rec []byte) (*T, error) {
	var zero T
	if n := int(unsafe.Sizeof(zero)); len(rec) < n {
		return nil, &ShortRecordError{Op: op, Len: len(rec), Want: n}
	}
	return (*T)(unsafe.Pointer(unsafe.SliceData(rec))), nil
}

// Sizes of the fixed parts of the records.
var (
	ExecEventSize = int(unsafe.Sizeof(ExecEvent{}))
	GenEventSize  = int(unsafe.Sizeof(GenEvent{}))
)

// Exec returns an exec record and its variable part (binary path, cwd and
// argv, of the lengths the record gives; see ExecData).
func Exec(rec []byte) (*ExecEvent, []byte, error) {
	r, err := view[ExecEvent](OpExec, rec)
	if err != nil {
		return nil, nil, err
	}
	return r, rec[ExecEventSize:], nil
}

// ExecData splits the variable part of an exec record into binary path, cwd
// and raw argv, clamping each length to what the record holds.
func ExecData(r *ExecEvent, data []byte) (path, cwd, args []byte) {
	take := func(n uint16) []byte {
		k := min(int(n), len(data))
		b := data[:k]
		data = data[k:]
		return b
	}
	path = take(r.PathLen)
	cwd = take(r.CwdLen)
	args = take(r.ArgsLen)
	return path, cwd, args
}

// Exit returns an exit record.
func Exit(rec []byte) (*ExitEvent, error) { return view[ExitEvent](OpExit, rec) }

// Fork returns a fork record.
func Fork(rec []byte) (*ForkEvent, error) { return view[ForkEvent](OpFork, rec) }

// Generic returns a tracing-policy record and its variable part, the
// arguments' data.
func Generic(rec []byte) (*GenEvent, []byte, error) {
	r, err := view[GenEvent](OpGeneric, rec)
	if err != nil {
		return nil, nil, err
	}
	return r, rec[GenEventSize:], nil
}

// Flow returns a flow record.
func Flow(rec []byte) (*FlowEvent, error) { return view[FlowEvent](OpFlow, rec) }

// DNS decodes the fixed part of a DNS record into dst and returns the
// message bytes the record carries (CapLen of them, fewer if the record is
// shorter). The bytes alias rec; dst.Data is not filled.
func DNS(rec []byte, dst *DNSEvent) ([]byte, error) {
	if len(rec) < DNSEventHead {
		return nil, &ShortRecordError{Op: OpDNS, Len: len(rec), Want: DNSEventHead}
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(dst)), DNSEventHead), rec)
	data := rec[DNSEventHead:]
	if n := int(dst.CapLen); n < len(data) {
		data = data[:n]
	}
	return data, nil
}

// FileArg returns a file argument's header and the path that follows it.
func FileArg(b []byte) (*GenFileArg, []byte, bool) {
	r, err := view[GenFileArg](0, b)
	if err != nil {
		return nil, nil, false
	}
	return r, b[unsafe.Sizeof(GenFileArg{}):], true
}

// SockArg returns a socket argument.
func SockArg(b []byte) (*GenSockArg, bool) {
	r, err := view[GenSockArg](0, b)
	return r, err == nil
}

// CredArg returns a credentials argument.
func CredArg(b []byte) (*Creds, bool) {
	r, err := view[Creds](0, b)
	return r, err == nil
}

// CString returns the bytes of a NUL-padded C string field.
func CString(b []int8) []byte {
	s := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(b))), len(b))
	for i, c := range s {
		if c == 0 {
			return s[:i]
		}
	}
	return s
}

// PutCString writes s into a NUL-padded C string field, truncating it to
// leave at least one NUL, and returns how many bytes it wrote.
func PutCString(dst []int8, s string) int {
	n := min(len(s), len(dst)-1)
	for i := 0; i < n; i++ {
		dst[i] = int8(s[i])
	}
	clear(dst[n:])
	return n
}
