package rules

import (
	"strings"
	"time"
	"unicode/utf8"
)

// The strings a rule reads are those of the exported JSON, decoded: the
// exporter writes most strings valid (encode.AppendString: a byte that is
// not UTF-8 becomes U+FFFD) and the bytes the kernel gave (paths,
// arguments of policy events: encode.AppendBytes) so that nothing is
// lost (a backslash doubled, a byte that is not UTF-8 written \xNN). These
// functions give what decoding each writes; the common case, valid text
// without a backslash, is returned as it is.

// jsonText is the decoded text of encode.AppendString(s).
func jsonText(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// bytesText is the decoded text of encode.AppendBytes(s).
func bytesText(s string) string {
	if strings.IndexByte(s, '\\') < 0 && utf8.ValidString(s) {
		return s
	}
	const hex = "0123456789abcdef"
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\x`)
			b.WriteByte(hex[s[i]>>4])
			b.WriteByte(hex[s[i]&0xf])
		case s[i] == '\\':
			b.WriteString(`\\`)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// timeText is an exported time: RFC 3339 in UTC with nine fractional
// digits.
func timeText(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000000Z07:00")
}
