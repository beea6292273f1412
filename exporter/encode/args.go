package encode

import "strings"

// appendArgumentsList appends the arguments string of a process (see
// event.Process.Arguments) as a JSON array with one string per argument,
// each written as AppendBytes writes a value, so that an argument holding
// bytes that are not UTF-8, or a backslash, is escaped the same way as a
// binary's path. It never fails: a string it cannot have been given (one a
// redaction pattern cut in the middle of a quoted argument) still gives
// an array, split as well as the string allows.
func appendArgumentsList(dst []byte, s string) []byte {
	dst = append(dst, '[')
	for first := true; len(s) > 0; first = false {
		if !first {
			dst = append(dst, ',')
		}
		if s[0] == '"' {
			i := 1
			for i < len(s) && s[i] != '"' {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			inner := s[1:min(i, len(s))]
			s = s[min(i+1, len(s)):]
			dst = appendQuotedArgument(dst, inner)
		} else {
			j := strings.IndexByte(s, ' ')
			if j < 0 {
				j = len(s)
			}
			dst = AppendBytes(dst, s[:j])
			s = s[j:]
		}
		s = strings.TrimPrefix(s, " ")
	}
	return append(dst, ']')
}

// appendQuotedArgument appends the argument inside a quoted one. Its
// escapes are those of AppendBytes (\\ for a backslash, \xNN for a byte
// that is not UTF-8) plus \" for a quote; so the value AppendBytes would
// write is the inside with \" turned back into ".
func appendQuotedArgument(dst []byte, inner string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(inner); i++ {
		if inner[i] != '\\' || i+1 >= len(inner) {
			continue
		}
		if inner[i+1] == '"' {
			dst = appendEscaped(dst, inner[start:i], modeReplace)
			dst = append(dst, '\\', '"')
			start = i + 2
		}
		i++
	}
	dst = appendEscaped(dst, inner[start:], modeReplace)
	return append(dst, '"')
}
