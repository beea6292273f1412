package httpproxy

import (
	"bytes"
	"io"
	"testing"

	"github.com/sirupsen/logrus"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
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

// FuzzHTTP2Frames: the HTTP/2 reader takes frames from both peers of a
// visibility port; whatever they send, it must not panic, track more
// streams than its cap, or leave a stream unreported at the end.
func FuzzHTTP2Frames(f *testing.F) {
	var client, server bytes.Buffer
	client.WriteString(http2.ClientPreface)
	cf, sf := http2.NewFramer(&client, nil), http2.NewFramer(&server, nil)
	_ = cf.WriteSettings()
	_ = sf.WriteSettings(http2.Setting{ID: http2.SettingHeaderTableSize, Val: 1 << 20})
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, h := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "d"}, {":path", "/a.B/C"}, {"content-type", "application/grpc"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: h[0], Value: h[1]})
	}
	_ = cf.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true})
	_ = cf.WriteData(1, true, []byte{0, 0, 0, 0, 0})
	hb.Reset()
	_ = enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
	_ = sf.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true})
	_ = sf.WriteData(1, false, []byte{0, 0, 0, 0, 0})
	hb.Reset()
	_ = enc.WriteField(hpack.HeaderField{Name: "grpc-status", Value: "0"})
	_ = sf.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true, EndStream: true})
	_ = cf.WriteRSTStream(3, http2.ErrCodeCancel)
	f.Add(client.Bytes(), server.Bytes())
	f.Add([]byte(http2.ClientPreface+"\x00\x00\x04\x01\x05\x00\x00\x00\x01\xff\xff\xff\x7f"), []byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
	f.Add([]byte(http2.ClientPreface), []byte{})
	log := logrus.New()
	log.SetOutput(io.Discard)
	f.Fuzz(func(t *testing.T, fromClient, fromServer []byte) {
		open, reported := 0, 0
		p := &Proxy{cfg: Config{MaxHeaderBytes: DefaultMaxHeaderBytes, Headers: []string{"content-type"}, Report: func(*Flow) { reported++ }}, log: log}
		c := &h2Conn{s: &session{p: p}, streams: map[uint32]*h2Stream{}}
		_ = c.frames(bytes.NewReader(fromClient), true)
		_ = c.frames(bytes.NewReader(fromServer), false)
		if open = len(c.streams); open > h2MaxStreams {
			t.Fatalf("%d streams tracked", open)
		}
		c.flush()
		if len(c.streams) != 0 || reported > int(p.st.requests.Load()) {
			t.Fatalf("%d left open, %d reported of %d requests", len(c.streams), reported, p.st.requests.Load())
		}
	})
}
