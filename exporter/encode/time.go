package encode

import "time"

// appendTime appends t as a quoted RFC 3339 timestamp in UTC with exactly
// nine fractional digits, for example "2026-11-22T07:18:21.123456789Z".
func appendTime(dst []byte, t time.Time) []byte {
	sec := t.Unix()
	if sec < 0 || sec >= 253402300800 { // outside years 1970..9999
		dst = append(dst, '"')
		dst = t.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000000000Z07:00")
		return append(dst, '"')
	}
	days := sec / 86400
	rem := sec % 86400
	y, m, d := civilFromDays(days)
	var b [32]byte
	b[0] = '"'
	put4(b[1:], y)
	b[5] = '-'
	put2(b[6:], m)
	b[8] = '-'
	put2(b[9:], d)
	b[11] = 'T'
	put2(b[12:], int(rem/3600))
	b[14] = ':'
	put2(b[15:], int(rem%3600/60))
	b[17] = ':'
	put2(b[18:], int(rem%60))
	b[20] = '.'
	ns := t.Nanosecond()
	for i := 29; i >= 21; i-- {
		b[i] = byte('0' + ns%10)
		ns /= 10
	}
	b[30] = 'Z'
	b[31] = '"'
	return append(dst, b[:]...)
}

// civilFromDays converts days since 1970-01-01 to a proleptic Gregorian
// date (Howard Hinnant's days_from_civil inverse).
func civilFromDays(z int64) (year, month, day int) {
	z += 719468
	era := z / 146097
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	return int(y), int(m), int(d)
}

func put2(b []byte, v int) {
	b[0] = byte('0' + v/10)
	b[1] = byte('0' + v%10)
}

func put4(b []byte, v int) {
	b[0] = byte('0' + v/1000)
	b[1] = byte('0' + v/100%10)
	b[2] = byte('0' + v/10%10)
	b[3] = byte('0' + v%10)
}

// Protobuf's Timestamp holds years 1 to 9999 (in seconds since 1970).
const (
	minTimestamp = -62135596800
	maxTimestamp = 253402300799
)

// timestampOK reports whether t fits protobuf's Timestamp; the tetragon
// format leaves out a time that does not, rather than write one Tetragon's
// parsers refuse.
func timestampOK(t time.Time) bool {
	s := t.Unix()
	return s >= minTimestamp && s <= maxTimestamp
}
