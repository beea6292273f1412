package process

import (
	"bytes"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// appendArgs formats argv as Tetragon's arguments string: the arguments
// after argv[0], separated by spaces. An argument that is empty, or holds a
// space or a double quote, is wrapped in double quotes, with the quotes and
// backslashes inside it escaped (\" and \\); so is one that holds bytes
// that are not UTF-8, each written \xNN. An argument written without quotes
// holds no space, no quote and no escape, so every argv has exactly one
// string and no two argv look alike ("a b" c is not "a, b", c).
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

// needsQuotes reports whether arg must be quoted: it is empty, or holds a
// space, a double quote or bytes that are not UTF-8.
func needsQuotes(arg []byte) bool {
	if len(arg) == 0 {
		return true
	}
	ascii := true
	for _, c := range arg {
		if c == ' ' || c == '"' {
			return true
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	return !ascii && !utf8.Valid(arg)
}

func appendArg(dst, arg []byte) []byte {
	if !needsQuotes(arg) {
		return append(dst, arg...)
	}
	dst = append(dst, '"')
	for len(arg) > 0 {
		c := arg[0]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
			arg = arg[1:]
			continue
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			arg = arg[1:]
			continue
		}
		r, size := utf8.DecodeRune(arg)
		if r == utf8.RuneError && size <= 1 {
			dst = append(dst, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
		} else {
			dst = append(dst, arg[:size]...)
		}
		arg = arg[size:]
	}
	return append(dst, '"')
}
