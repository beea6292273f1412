package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var tookLine = regexp.MustCompile(`(?m)^testsum: (\S+) took .*$`)

// TestGolden feeds recorded go test -json streams through testsum and
// compares its report with testdata/<name>.golden.
func TestGolden(t *testing.T) {
	tests := []struct {
		name     string
		wantCode int
	}{
		// passing, failing, skipped, sub-tests, a panic, a build failure,
		// a package without tests
		{"mixed", 1},
		// the VM runner failed: the package fails without a failing test
		{"vmerror", 1},
		// no test matched anywhere
		{"notests", 0},
		// a package timed out: the test running then and the panic
		{"timeout", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := os.Open(filepath.Join("testdata", tt.name+".jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			var stdout, stderr bytes.Buffer
			code := run([]string{"-label", "demo"}, in, &stdout, &stderr)
			if code != tt.wantCode || stderr.Len() > 0 {
				t.Errorf("exit status %d, stderr %q; want %d and no stderr", code, stderr.String(), tt.wantCode)
			}
			got := tookLine.ReplaceAllString(stdout.String(), "testsum: $1 took <time>")
			golden := filepath.Join("testdata", tt.name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("report (-want +got):\n%s", diff)
			}
		})
	}
}

func TestClosingLine(t *testing.T) {
	// The last line is the plain count CI reads.
	in, err := os.Open(filepath.Join("testdata", "mixed.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var stdout bytes.Buffer
	run([]string{"-label", "vm-6.1"}, in, &stdout, &bytes.Buffer{})
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if got, want := lines[len(lines)-1], "vm-6.1: 3 passed, 5 failed, 1 skipped"; got != want {
		t.Errorf("closing line %q, want %q", got, want)
	}
}

func TestCommand(t *testing.T) {
	fixture, err := filepath.Abs(filepath.Join("testdata", "notests.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		script   string
		wantCode int
		want     string
	}{
		{"passes", "cat " + fixture, 0, "demo: 0 passed, 0 failed, 0 skipped\n"},
		{"command fails without a failing test", "cat " + fixture + "; echo 'go: no such package' >&2; exit 2", 1,
			"testsum: the test command failed without a failing test: exit status 2\ndemo: 0 passed, 1 failed, 0 skipped\n"},
		{"non-JSON lines pass through", "echo 'go: downloading x'; cat " + fixture, 0, "go: downloading x\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run([]string{"-label", "demo", "--", "sh", "-c", tt.script}, nil, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit status %d, want %d", code, tt.wantCode)
			}
			if !strings.Contains(stdout.String(), tt.want) {
				t.Errorf("stdout %q lacks %q", stdout.String(), tt.want)
			}
		})
	}
	var stderr bytes.Buffer
	if code := run([]string{"--", "/nonexistent/go"}, nil, &bytes.Buffer{}, &stderr); code != 1 {
		t.Errorf("missing command: exit status %d, want 1", code)
	}
}

func TestLabel(t *testing.T) {
	for _, bad := range []string{"", "two words", "a:b"} {
		var stderr bytes.Buffer
		if code := run([]string{"-label", bad}, strings.NewReader(""), &bytes.Buffer{}, &stderr); code != 2 || !strings.Contains(stderr.String(), "-label:") {
			t.Errorf("-label %q: exit %d, stderr %q", bad, code, stderr.String())
		}
	}
}

func FuzzSummaryLine(f *testing.F) {
	f.Add(`{"Action":"fail","Package":"p","Test":"T"}` + "\n")
	f.Add(`{"Action":"fail","Package":"p","FailedBuild":"p [p.test]"}` + "\n")
	f.Add("not json\n")
	f.Fuzz(func(t *testing.T, line string) {
		s := newSummary(&bytes.Buffer{})
		s.line(line)
		var out bytes.Buffer
		failed := s.report(&out, "f", nil)
		if failed != (s.failed > 0) {
			t.Errorf("report says failed=%v with %d failures", failed, s.failed)
		}
	})
}
