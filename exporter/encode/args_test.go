package encode

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/event"
)

func TestArgumentsList(t *testing.T) {
	tests := []struct {
		args string
		want []string
	}{
		{`"hello world" x`, []string{"hello world", "x"}},
		{`"\"a b\"" c`, []string{`"a b"`, "c"}},
		{`"\"a" "b\"" c`, []string{`"a`, `b"`, "c"}},
		{`"" b`, []string{"", "b"}},
		{`s/\//x/`, []string{`s/\\//x/`}},
		{`"back\\slash and space"`, []string{`back\\slash and space`}},
		{`"\xff\xfe"`, []string{`\xff\xfe`}},
		{`"caf\xe9" café`, []string{`caf\xe9`, "café"}},
		// What a redaction pattern may leave: still an array.
		{`--password=***** b"`, []string{"--password=*****", `b"`}},
		{`"unterminated`, []string{"unterminated"}},
		{`a  b`, []string{"a", "", "b"}},
	}
	for _, tt := range tests {
		var got []string
		out := appendArgumentsList(nil, tt.args)
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%q: %s: %v", tt.args, out, err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%q (-want +got):\n%s", tt.args, diff)
		}
	}
}

// quoteArgs formats argv[1:] as process.appendArgs does (Tetragon's rule,
// with bytes that are not UTF-8 as \xNN inside quotes).
func quoteArgs(argv [][]byte) string {
	var b bytes.Buffer
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		if len(a) > 0 && !bytes.ContainsAny(a, ` "`) && utf8.Valid(a) {
			b.Write(a)
			continue
		}
		b.WriteByte('"')
		for len(a) > 0 {
			r, size := utf8.DecodeRune(a)
			switch {
			case a[0] == '"' || a[0] == '\\':
				b.WriteByte('\\')
				b.WriteByte(a[0])
			case r == utf8.RuneError && size <= 1:
				b.WriteString(`\x`)
				b.WriteByte(hexDigits[a[0]>>4])
				b.WriteByte(hexDigits[a[0]&0xf])
			default:
				b.Write(a[:size])
			}
			a = a[size:]
		}
		b.WriteByte('"')
	}
	return b.String()
}

// FuzzArgumentsList checks that the array form gives back every argument
// exactly (after undoing AppendBytes' escapes), in an event as a SIEM
// reads it.
func FuzzArgumentsList(f *testing.F) {
	f.Add([]byte("\"a b\"\x00c"))
	f.Add([]byte("\"a\x00b\"\x00c"))
	f.Add([]byte("\xff\\x\x00\x00s/\\//"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		argv := bytes.Split(raw, []byte{0})
		args := quoteArgs(argv)
		ev := &event.Event{Type: event.TypeProcessExec, Process: &event.Process{Binary: "/bin/x", Arguments: args}}
		line := AppendJSON(nil, ev, "n", &Options{ArgumentsList: true})
		var got struct {
			Exec struct {
				Process struct {
					Arguments     string   `json:"arguments"`
					ArgumentsList []string `json:"arguments_list"`
				} `json:"process"`
			} `json:"process_exec"`
		}
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		p := got.Exec.Process
		if p.Arguments != args {
			t.Fatalf("arguments %q, want %q", p.Arguments, args)
		}
		if len(p.ArgumentsList) != len(argv) {
			t.Fatalf("%q: %d arguments listed, want %d: %q", args, len(p.ArgumentsList), len(argv), p.ArgumentsList)
		}
		for i, a := range p.ArgumentsList {
			back, ok := readBytes(a)
			if !ok || back != string(argv[i]) {
				t.Fatalf("%q: argument %d listed as %q, reads %q, want %q", args, i, a, back, argv[i])
			}
		}
	})
}

func TestAppendBytes(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/usr/bin/curl", `"/usr/bin/curl"`},
		{"/tmp/é", `"/tmp/é"`},
		{"/tmp/a\xff", `"/tmp/a\\xff"`},
		{`/tmp/a\xff`, `"/tmp/a\\\\xff"`}, // a backslash in the name: doubled, so the two differ
		{"/tmp/\"q\"\n", `"/tmp/\"q\"\n"`},
		{"a\\b\xc3", `"a\\\\b\\xc3"`},
	}
	for _, tt := range tests {
		if got := string(AppendBytes(nil, tt.in)); got != tt.want {
			t.Errorf("AppendBytes(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestArgumentsListDoesNotAllocate(t *testing.T) {
	// An encoder without caches encodes every process object anew.
	e := &Encoder{opts: Options{ArgumentsList: true}}
	ev := &event.Event{Type: event.TypeProcessExec, Process: &event.Process{Binary: "/bin/sh\xff",
		Arguments: `-c "echo \"hi there\" \xff" back\slash`}}
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(1000, func() {
		buf = e.AppendJSON(buf[:0], ev, "n")
	})
	if allocs != 0 {
		t.Errorf("%v allocations per event, want 0", allocs)
	}
	if !bytes.Contains(buf, []byte(`"arguments_list":["-c","echo \"hi there\" \\xff","back\\\\slash"]`)) {
		t.Errorf("unexpected encoding %s", buf)
	}
}
