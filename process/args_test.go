package process

import (
	"bytes"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestArguments(t *testing.T) {
	tests := []struct {
		raw  string
		want string
	}{
		{"/bin/echo\x00hello world\x00x\x00", `"hello world" x`},
		{"ls\x00", ``},
		{"ls", ``},
		{"a\x00\x00b\x00", `"" b`},
		{"a\x00é ü\x00ok\x00", `"é ü" ok`},
		{"a\x00say \"hi\"\x00", `"say \"hi\""`},
		// Tetragon's rule: a quote alone also quotes the argument, so
		// that "a b" c and "a, b", c differ.
		{"sh\x00\"a b\"\x00c\x00", `"\"a b\"" c`},
		{"sh\x00\"a\x00b\"\x00c\x00", `"\"a" "b\"" c`},
		{"sed\x00s/\\//x/\x00", `s/\//x/`},
		{"a\x00back\\slash and space\x00", `"back\\slash and space"`},
		// Bytes that are not UTF-8 are kept, escaped, so that two
		// different arguments never look alike.
		{"a\x00\xff\xfe\x00", `"\xff\xfe"`},
		{"a\x00caf\xe9\x00caf\u00e9\x00", `"caf\xe9" café`},
		{"a\x00trunc", `trunc`},
	}
	for _, tt := range tests {
		got, _ := appendArgs(nil, []byte(tt.raw))
		if diff := cmp.Diff(tt.want, string(got)); diff != "" {
			t.Errorf("appendArgs(%q) (-want +got):\n%s", tt.raw, diff)
		}
	}
}

// splitArgs reads the arguments string back into argv[1:], the way a
// consumer of the events would; it reports false for a string appendArgs
// cannot have written.
func splitArgs(s string) ([][]byte, bool) {
	var out [][]byte
	for len(s) > 0 {
		if s[0] != '"' {
			end := len(s)
			for i := 0; i < len(s); i++ {
				if s[i] == ' ' {
					end = i
					break
				}
			}
			tok := s[:end]
			for i := 0; i < len(tok); i++ {
				if tok[i] == '"' {
					return nil, false
				}
			}
			out = append(out, []byte(tok))
			s = s[end:]
		} else {
			arg := []byte{}
			i := 1
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] != '\\' {
					arg = append(arg, s[i])
					continue
				}
				if i+1 >= len(s) {
					return nil, false
				}
				switch s[i+1] {
				case '"', '\\':
					arg = append(arg, s[i+1])
					i++
				case 'x':
					if i+3 >= len(s) {
						return nil, false
					}
					b, err := strconv.ParseUint(s[i+2:i+4], 16, 8)
					if err != nil {
						return nil, false
					}
					arg = append(arg, byte(b))
					i += 3
				default:
					return nil, false
				}
			}
			if i >= len(s) {
				return nil, false
			}
			out = append(out, arg)
			s = s[i+1:]
		}
		if len(s) > 0 {
			if s[0] != ' ' {
				return nil, false
			}
			s = s[1:]
			if len(s) == 0 {
				return nil, false
			}
		}
	}
	return out, true
}

// FuzzArguments checks that the arguments string is valid UTF-8 and reads
// back to exactly the argv it was made from: no two argv share a string.
func FuzzArguments(f *testing.F) {
	f.Add([]byte("sh\x00\"a b\"\x00c\x00"))
	f.Add([]byte("sh\x00\"a\x00b\"\x00c\x00"))
	f.Add([]byte("x\x00\xff\\x\x00\x00"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !bytes.HasSuffix(raw, []byte{0}) {
			raw = append(raw, 0)
		}
		got, _ := appendArgs(nil, raw)
		if !utf8.Valid(got) {
			t.Fatalf("not UTF-8: %q", got)
		}
		parts := bytes.Split(bytes.TrimSuffix(raw, []byte{0}), []byte{0})
		want := parts[1:]
		if len(want) == 0 {
			if len(got) != 0 {
				t.Fatalf("no arguments, got %q", got)
			}
			return
		}
		back, ok := splitArgs(string(got))
		if !ok {
			t.Fatalf("%q: unreadable arguments string %q", raw, got)
		}
		if diff := cmp.Diff(want, back); diff != "" {
			t.Fatalf("%q -> %q reads back differently (-want +got):\n%s", raw, got, diff)
		}
	})
}
