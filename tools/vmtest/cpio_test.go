package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

// cpioEntry is one archive member as read back by readCPIO.
type cpioEntry struct {
	Name         string
	Mode         uint32
	Data         string
	RMajor, RMin uint32
}

// readCPIO is an independent newc reader: it checks the magic, the field
// layout, the four-byte alignment of every header and data block, and the
// trailer.
func readCPIO(b []byte) ([]cpioEntry, error) {
	var out []cpioEntry
	off := 0
	for {
		if off%4 != 0 {
			return nil, fmt.Errorf("header at offset %d is not 4-byte aligned", off)
		}
		if off+110 > len(b) {
			return nil, fmt.Errorf("truncated header at offset %d", off)
		}
		h := string(b[off : off+110])
		if h[:6] != "070701" {
			return nil, fmt.Errorf("bad magic %q at offset %d", h[:6], off)
		}
		field := func(i int) uint32 {
			v, err := strconv.ParseUint(h[6+8*i:6+8*i+8], 16, 32)
			if err != nil {
				panic(err)
			}
			return uint32(v)
		}
		mode, size, rmaj, rmin, namesize := field(1), field(6), field(9), field(10), field(11)
		nameEnd := off + 110 + int(namesize)
		if nameEnd > len(b) || b[nameEnd-1] != 0 {
			return nil, fmt.Errorf("bad name at offset %d", off)
		}
		name := string(b[off+110 : nameEnd-1])
		data := (nameEnd + 3) &^ 3
		if data+int(size) > len(b) {
			return nil, fmt.Errorf("%s: truncated data", name)
		}
		if name == "TRAILER!!!" {
			if rest := len(b) - (data + int(size)); rest > 3 {
				return nil, fmt.Errorf("%d bytes after the trailer", rest)
			}
			return out, nil
		}
		out = append(out, cpioEntry{Name: name, Mode: mode, Data: string(b[data : data+int(size)]), RMajor: rmaj, RMin: rmin})
		off = (data + int(size) + 3) &^ 3
	}
}

func TestCPIOWriter(t *testing.T) {
	var buf bytes.Buffer
	c := newCPIOWriter(&buf)
	steps := []error{
		c.Dir("/etc", 0o755),
		c.Bytes("/etc/passwd", 0o644, []byte("root:x:0:0::/:/bin/sh\n")),
		c.File("/deep/er/file", 0o700, 3, strings.NewReader("abc")),
		c.Bytes("empty", 0o600, nil),
		c.Symlink("/bin/sh", "busybox"),
		c.CharDev("dev/console", 0o600, 5, 1),
		c.Dir("/deep", 0o700), // already created as a parent: not added twice
		c.Close(),
	}
	if err := errors.Join(steps...); err != nil {
		t.Fatal(err)
	}
	got, err := readCPIO(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	want := []cpioEntry{
		{Name: "etc", Mode: 0o040755},
		{Name: "etc/passwd", Mode: 0o100644, Data: "root:x:0:0::/:/bin/sh\n"},
		{Name: "deep", Mode: 0o040755},
		{Name: "deep/er", Mode: 0o040755},
		{Name: "deep/er/file", Mode: 0o100700, Data: "abc"},
		{Name: "empty", Mode: 0o100600},
		{Name: "bin", Mode: 0o040755},
		{Name: "bin/sh", Mode: 0o120777, Data: "busybox"},
		{Name: "dev", Mode: 0o040755},
		{Name: "dev/console", Mode: 0o020600, RMajor: 5, RMin: 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("archive (-want +got):\n%s", diff)
	}

	// GNU cpio, when present, must read the archive the same way.
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Log("cpio not installed; skipping the cross-check with GNU cpio")
		return
	}
	cmd := exec.Command("cpio", "-it", "--quiet")
	cmd.Stdin = bytes.NewReader(buf.Bytes())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -it: %v\n%s", err, out)
	}
	var names []string
	for _, e := range want {
		names = append(names, e.Name)
	}
	if diff := cmp.Diff(names, strings.Fields(string(out))); diff != "" {
		t.Errorf("cpio -it lists (-want +got):\n%s", diff)
	}
}

func TestCPIOWriterErrors(t *testing.T) {
	tests := []struct {
		name  string
		write func(c *cpioWriter) error
		want  string
		// sticky: the archive is broken, so Close must fail too.
		sticky bool
	}{
		{"short file", func(c *cpioWriter) error {
			return c.File("f", 0o644, 10, strings.NewReader("abc"))
		}, "cpio: f: file is shorter than 10 bytes", true},
		{"read error", func(c *cpioWriter) error {
			return c.File("f", 0o644, 10, iotest.ErrReader(io.ErrClosedPipe))
		}, "cpio: f: io: read/write on closed pipe", true},
		{"empty name", func(c *cpioWriter) error { return c.Dir("/", 0o755) }, `cpio: empty name "/"`, false},
		{"NUL in name", func(c *cpioWriter) error {
			return c.Bytes("a\x00b", 0o644, nil)
		}, `cpio: name "a\x00b" contains a NUL byte`, true},
		{"negative size", func(c *cpioWriter) error {
			return c.File("f", 0o644, -1, strings.NewReader(""))
		}, "cpio: f: size -1 does not fit the newc format", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCPIOWriter(io.Discard)
			err := tt.write(c)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("got error %v, want %q", err, tt.want)
			}
			if err := c.Close(); (err != nil) != tt.sticky {
				t.Errorf("Close after the failed write: %v, want an error: %v", err, tt.sticky)
			}
		})
	}
}
