package main

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// goTestArgs is what go test passes to a test binary run with
// -exec, -count=1, -json and -run.
var goTestArgs = []string{"-test.paniconexit0", "-test.v=test2json", "-test.timeout=10m0s", "-test.run=^TestPriv", "-test.count=1"}

func TestTestFlag(t *testing.T) {
	tests := []struct {
		args      []string
		name      string
		want      string
		wantFound bool
	}{
		{goTestArgs, "run", "^TestPriv", true},
		{goTestArgs, "timeout", "10m0s", true},
		{goTestArgs, "v", "test2json", true},
		{goTestArgs, "paniconexit0", "true", true},
		{goTestArgs, "bench", "", false},
		{[]string{"-test.run", "^TestA$", "-test.v"}, "run", "^TestA$", true},
		{[]string{"-test.v", "-test.run", "X"}, "v", "true", true},
		{[]string{"--test.run=Y"}, "run", "Y", true},
		{[]string{"-test.run=A", "-test.run=B"}, "run", "B", true},
		{[]string{"-test.runx=A"}, "run", "", false},
		{[]string{"--", "-test.run=A"}, "run", "", false},
		{[]string{"test.run=A"}, "run", "", false},
	}
	for _, tt := range tests {
		got, found := testFlag(tt.args, tt.name)
		if got != tt.want || found != tt.wantFound {
			t.Errorf("testFlag(%q, %q) = %q, %v; want %q, %v", tt.args, tt.name, got, found, tt.want, tt.wantFound)
		}
	}
}

func TestDropTestFlag(t *testing.T) {
	args := []string{"-test.testlogfile=/tmp/x/testlog.txt", "-test.v", "-test.testlogfile", "/tmp/y", "-test.run=A"}
	want := []string{"-test.v", "-test.run=A"}
	if diff := cmp.Diff(want, dropTestFlag(args, "testlogfile")); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestTopLevelPattern(t *testing.T) {
	tests := map[string]string{
		"^TestPriv":           "^TestPriv",
		"^TestPriv/sub":       "^TestPriv",
		"TestA|TestB/x/y":     "TestA|TestB",
		"Test[/]x/y":          "Test[/]x",
		`Test(a/b)/c`:         "Test(a/b)",
		`Test\/x/y`:           `Test\/x`,
		"":                    "",
		"/only-subtests":      "",
		"unbalanced]/x":       "unbalanced]",
		"^TestPrivProbe$/6.1": "^TestPrivProbe$",
	}
	for in, want := range tests {
		if got := topLevelPattern(in); got != want {
			t.Errorf("topLevelPattern(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzTopLevelPattern(f *testing.F) {
	for _, s := range []string{"^TestPriv/sub", "Test[/]x/y", `a\`, "(/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got := topLevelPattern(s); !strings.HasPrefix(s, got) {
			t.Errorf("topLevelPattern(%q) = %q, not a prefix", s, got)
		}
	})
}

func TestGuestTimeout(t *testing.T) {
	fallback := 7 * time.Minute
	tests := []struct {
		args []string
		want time.Duration
	}{
		{goTestArgs, 10*time.Minute + bootMargin},
		{[]string{"-test.timeout=0s"}, fallback},
		{[]string{"-test.timeout=bogus"}, fallback},
		{nil, fallback},
		{[]string{"-test.timeout", "90s"}, 90*time.Second + bootMargin},
	}
	for _, tt := range tests {
		if got := guestTimeout(tt.args, fallback); got != tt.want {
			t.Errorf("guestTimeout(%q) = %s, want %s", tt.args, got, tt.want)
		}
	}
	if bootMargin >= time.Minute {
		t.Errorf("bootMargin %s: go test kills -exec programs one minute after the test timeout; the guest must time out first", bootMargin)
	}
}
