package process

import (
	"bytes"
	"unicode/utf8"
)

// appendArgs formats argv as Tetragon's arguments string: the arguments
// after argv[0], separated by spaces; an argument that is empty or contains a
// space is double-quoted, with quotes and backslashes inside it escaped.
// raw is argv as the kernel stores it: NUL-terminated strings back to back
// (the final NUL may be missing when the record was truncated). It returns
// argv[0] separately.
func appendArgs(dst, raw []byte) (out []byte, argv0 []byte) {
	raw = bytes.TrimSuffix(raw, []byte{0})
	i := bytes.IndexByte(raw, 0)
	if i < 0 {
		return dst, raw
	}
	argv0, raw = raw[:i], raw[i+1:]
	first := true
	for {
		var arg []byte
		j := bytes.IndexByte(raw, 0)
		if j < 0 {
			arg = raw
		} else {
			arg = raw[:j]
		}
		if !first {
			dst = append(dst, ' ')
		}
		first = false
		dst = appendArg(dst, arg)
		if j < 0 {
			break
		}
		raw = raw[j+1:]
	}
	return dst, argv0
}

func appendArg(dst, arg []byte) []byte {
	if len(arg) != 0 && bytes.IndexByte(arg, ' ') < 0 {
		return appendValid(dst, arg)
	}
	dst = append(dst, '"')
	for len(arg) > 0 {
		c := arg[0]
		if c == '"' || c == '\\' {
			dst = append(dst, '\\', c)
			arg = arg[1:]
			continue
		}
		r, size := utf8.DecodeRune(arg)
		if r == utf8.RuneError && size <= 1 {
			dst = append(dst, "\uFFFD"...)
		} else {
			dst = append(dst, arg[:size]...)
		}
		arg = arg[size:]
	}
	return append(dst, '"')
}

// appendValid appends b, replacing invalid UTF-8 with U+FFFD.
func appendValid(dst, b []byte) []byte {
	if utf8.Valid(b) {
		return append(dst, b...)
	}
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size <= 1 {
			dst = append(dst, "\uFFFD"...)
		} else {
			dst = append(dst, b[:size]...)
		}
		b = b[size:]
	}
	return dst
}
