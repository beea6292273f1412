package rules

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"testing"
)

// recorded reads testdata/recorded.jsonl: the events of the default rules'
// privileged test on the host (execs, policy events and flows, the
// behaviours and their benign counterparts).
func recorded(tb testing.TB) [][]byte { return readLines(tb, "testdata/recorded.jsonl") }

// ordinary reads testdata/ordinary.jsonl.gz: what the agent with its
// default policies exported on a host during ordinary activity (shells,
// git, ls, ps, grep of /etc/passwd, curl to a local web server, go vet),
// less exits and alerts, which never reach the engine.
func ordinary(tb testing.TB) [][]byte { return readLines(tb, "testdata/ordinary.jsonl.gz") }

func readLines(tb testing.TB, name string) [][]byte {
	tb.Helper()
	f, err := os.Open(name)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if bytes.HasSuffix([]byte(name), []byte(".gz")) {
		zr, err := gzip.NewReader(f)
		if err != nil {
			tb.Fatal(err)
		}
		r = zr
	}
	var lines [][]byte
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, bytes.Clone(sc.Bytes()))
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return lines
}
