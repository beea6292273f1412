package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Segment files start with a magic string, then hold records back to back:
//
//	uint32 length of the payload (little endian)
//	uint32 count (lines in the batch, for accounting)
//	uint32 CRC-32C of the payload
//	payload
const (
	magic      = "VIGILSP1"
	headerSize = 12
	// MaxRecord bounds a record's payload; longer records are refused.
	MaxRecord = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var errCorrupt = errors.New("corrupt record")

func putHeader(b []byte, payload []byte, count int) {
	binary.LittleEndian.PutUint32(b[0:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[4:], uint32(count))
	binary.LittleEndian.PutUint32(b[8:], crc32.Checksum(payload, castagnoli))
}

// parseHeader returns the payload length, count and checksum of a record
// header, rejecting lengths no writer produces.
func parseHeader(b []byte) (n int, count int, sum uint32, err error) {
	if len(b) < headerSize {
		return 0, 0, 0, fmt.Errorf("%w: short header", errCorrupt)
	}
	n = int(binary.LittleEndian.Uint32(b[0:]))
	if n == 0 || n > MaxRecord {
		return 0, 0, 0, fmt.Errorf("%w: length %d", errCorrupt, n)
	}
	return n, int(binary.LittleEndian.Uint32(b[4:])), binary.LittleEndian.Uint32(b[8:]), nil
}

// DecodeRecord parses one framed record at the start of b and returns its
// payload, count and framed size. It is what the reader uses on disk data.
func DecodeRecord(b []byte) (payload []byte, count int, size int, err error) {
	n, count, sum, err := parseHeader(b)
	if err != nil {
		return nil, 0, 0, err
	}
	if len(b) < headerSize+n {
		return nil, 0, 0, fmt.Errorf("%w: payload of %d bytes truncated to %d", errCorrupt, n, len(b)-headerSize)
	}
	payload = b[headerSize : headerSize+n]
	if crc32.Checksum(payload, castagnoli) != sum {
		return nil, 0, 0, fmt.Errorf("%w: checksum mismatch", errCorrupt)
	}
	return payload, count, headerSize + n, nil
}
