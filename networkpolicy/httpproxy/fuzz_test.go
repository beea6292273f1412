package httpproxy

import (
	"bytes"
	"testing"
)

// FuzzFraming: the header scan and the smuggling check read client bytes
// before net/http does; they must never panic, and the end they find is
// an empty line within the input.
func FuzzFraming(f *testing.F) {
	for _, s := range []string{
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\nHost: a\n\n",
		"GET / HTTP/1.1\r\nA: b\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"\n\n", "\n\r\n", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		i := headerEnd(b)
		if i < 0 {
			if bytes.Contains(b, []byte("\n\n")) || bytes.Contains(b, []byte("\n\r\n")) {
				t.Fatalf("no end found in %q", b)
			}
			return
		}
		if i > len(b) || b[i-1] != '\n' {
			t.Fatalf("end %d of %q is not after a newline", i, b)
		}
		_ = checkFraming(b[:i])
	})
}
