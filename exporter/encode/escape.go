package encode

import (
	"unicode/utf8"
	"unsafe"
)

const hexDigits = "0123456789abcdef"

// plain[c] is true for ASCII bytes that appear unchanged inside a JSON string.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// AppendString appends s to dst as a quoted JSON string. Control characters
// are escaped and invalid UTF-8 is replaced by U+FFFD, so the result is
// always valid JSON; '<', '>' and '&' are left as they are.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, s, modeReplace)
	return append(dst, '"')
}

// AppendBytes appends s, bytes from the kernel (a path, an argument), to dst
// as a quoted JSON string that loses nothing: a value that is UTF-8 and
// holds no backslash is written as it is; any other is written escaped, so
// that the decoded string holds \\ for each backslash and \xNN for each
// byte that is not UTF-8. Two different values never give the same string.
func AppendBytes(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, s, modeBytes)
	return append(dst, '"')
}

// How appendEscaped treats backslashes and bytes that are not UTF-8.
type escapeMode uint8

const (
	// modeReplace keeps backslashes (JSON-escaped) and replaces invalid
	// UTF-8 with U+FFFD.
	modeReplace escapeMode = iota
	// modeBytes is AppendBytes': it doubles backslashes and writes invalid
	// bytes as \xNN, in the decoded string (a value with neither is
	// written as it is).
	modeBytes
)

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// special reports whether any of the 8 bytes in x needs attention: a
// control character, '"', '\\' or a byte of a multi-byte UTF-8 sequence.
// It may report false positives only for words that also hold such a byte.
func special(x uint64) bool {
	const quote, backslash = '"' * lsb, '\\' * lsb
	return ((x-0x20*lsb)|x|((x^quote)-lsb)|((x^backslash)-lsb))&msb != 0
}

// appendEscaped appends the JSON string escaping of s, without quotes.
func appendEscaped(dst []byte, s string, mode escapeMode) []byte {
	start := 0
	p := unsafe.Pointer(unsafe.StringData(s))
	for i := 0; i < len(s); {
		// Skip eight plain ASCII bytes at a time; most strings are all
		// plain. The load is in bounds (i+8 <= len(s)); x86 and arm64
		// allow unaligned loads, and the byte order does not matter since
		// every byte is tested.
		for i+8 <= len(s) && !special(*(*uint64)(unsafe.Add(p, i))) {
			i += 8
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if plain[c] {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			dst = append(dst, s[start:i]...)
			if mode == modeReplace {
				dst = append(dst, `\ufffd`...)
			} else {
				dst = append(dst, '\\', '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '\\':
			if mode == modeReplace {
				dst = append(dst, '\\', '\\')
			} else {
				dst = append(dst, '\\', '\\', '\\', '\\')
			}
		case '"':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	return append(dst, s[start:]...)
}
