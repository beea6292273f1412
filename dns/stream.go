package dns

import "errors"

// MaxTCPMessage bounds a message read from a TCP stream: its two-byte
// length prefix allows 65535 bytes.
const MaxTCPMessage = 65535

// ErrStreamLost is returned when bytes of a TCP stream were not seen
// (a segment cut short by the capture): the stream is lost until it
// resynchronizes, which Stream does at the next segment that starts a
// message.
var ErrStreamLost = errors.New("DNS over TCP: bytes of the stream were not seen")

// Stream splits one direction of a DNS-over-TCP connection into messages:
// each is a two-byte length and that many bytes, and a segment may hold a
// part of one, one, or several. The zero value is ready to use.
type Stream struct {
	buf []byte
	// lost: the stream is out of step; the next segment is taken as the
	// start of a message.
	lost bool
}

// Feed adds the payload of the next segment. whole is false when the
// capture holds only the head of the segment. It returns the messages the
// segment completed (aliasing seg or the stream's buffer, valid until the
// next Feed), and ErrStreamLost once when bytes were missed.
func (s *Stream) Feed(seg []byte, whole bool) ([][]byte, error) {
	var err error
	if s.lost {
		s.buf, s.lost = s.buf[:0], false
	}
	if !whole {
		// The messages wholly inside the captured head can still be read;
		// what follows is lost.
		s.lost, err = true, ErrStreamLost
	}
	var out [][]byte
	data := seg
	if len(s.buf) > 0 {
		s.buf = append(s.buf, seg...)
		data = s.buf
	}
	for len(data) >= 2 {
		n := int(data[0])<<8 | int(data[1])
		if len(data)-2 < n {
			break
		}
		out = append(out, data[2:2+n])
		data = data[2+n:]
	}
	if s.lost {
		return out, err
	}
	if len(data) > MaxTCPMessage+2 {
		s.buf, s.lost = s.buf[:0], true
		return out, ErrStreamLost
	}
	if len(data) > 0 {
		// Keep the rest for the next segment; copy when it aliases seg
		// or overlaps what was returned.
		rest := make([]byte, len(data), max(len(data), 512))
		copy(rest, data)
		s.buf = rest
	} else {
		s.buf = s.buf[:0]
	}
	return out, err
}

// Pending reports how many bytes wait for the rest of their message.
func (s *Stream) Pending() int { return len(s.buf) }
