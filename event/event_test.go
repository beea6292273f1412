package event

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestTypeNames(t *testing.T) {
	seen := map[string]bool{}
	for _, ty := range Types() {
		name := ty.String()
		if name == "" || name == "unknown" || seen[name] {
			t.Errorf("type %d has name %q (empty, unknown or repeated)", ty, name)
		}
		seen[name] = true
		if got, ok := ParseType(name); !ok || got != ty {
			t.Errorf("ParseType(%q) = %v, %v; want %v", name, got, ok, ty)
		}
	}
	for _, want := range []string{"process_exec", "process_exit", "process_kprobe", "process_tracepoint", "process_lsm", "flow", "alert", "lost_events", "rate_limit_info"} {
		if !seen[want] {
			t.Errorf("no event type is named %s", want)
		}
	}
	if _, ok := ParseType("process_uprobe_nope"); ok {
		t.Error("an unknown name parsed")
	}
	if Type(200).String() != "unknown" {
		t.Errorf("out-of-range type named %q", Type(200).String())
	}
}

// A clone stays as it was when the producer reuses the original's parts,
// and shares the immutable process values.
func TestClone(t *testing.T) {
	proc := &Process{PID: 1, Binary: "/bin/sh"}
	orig := &Event{
		Type: TypeProcessKprobe, Process: proc,
		Exit:   &Exit{Status: 1},
		Kprobe: &Kprobe{PolicyName: "p", Args: []Arg{{Kind: ArgString, Str: "a"}}, Return: &Arg{Kind: ArgInt, Int: -1}},
		Flow:   &Flow{SourcePort: 80},
		Alert:  &Alert{Rule: Rule{ID: "R"}, Event: &Event{Type: TypeProcessExec, Exit: &Exit{Status: 2}}},
		Lost:   &Lost{Reason: "x", Count: 3},
	}
	want := &Event{
		Type: TypeProcessKprobe, Process: proc,
		Exit:   &Exit{Status: 1},
		Kprobe: &Kprobe{PolicyName: "p", Args: []Arg{{Kind: ArgString, Str: "a"}}, Return: &Arg{Kind: ArgInt, Int: -1}},
		Flow:   &Flow{SourcePort: 80},
		Alert:  &Alert{Rule: Rule{ID: "R"}, Event: &Event{Type: TypeProcessExec, Exit: &Exit{Status: 2}}},
		Lost:   &Lost{Reason: "x", Count: 3},
	}
	c := orig.Clone()
	// The producer reuses its values for the next record.
	orig.Exit.Status = 9
	orig.Kprobe.Args[0].Str = "b"
	orig.Kprobe.Return.Int = 5
	orig.Kprobe.PolicyName = "q"
	orig.Flow.SourcePort = 443
	orig.Alert.Event.Exit.Status = 7
	orig.Lost.Count = 4
	if diff := cmp.Diff(want, c, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("clone changed with the original (-want +got):\n%s", diff)
	}
	if c.Process != proc {
		t.Error("clone copied the process value; process values are shared")
	}
}

func TestPolicyName(t *testing.T) {
	for _, tc := range []struct {
		ev   Event
		want string
	}{
		{Event{Kprobe: &Kprobe{PolicyName: "files"}}, "files"},
		{Event{Flow: &Flow{EgressDeniedBy: []string{"ns/deny"}}}, "ns/deny"},
		{Event{Flow: &Flow{IngressDeniedBy: []string{"ns/in"}, PolicyNames: []string{"allow"}}}, "ns/in"},
		{Event{Flow: &Flow{PolicyNames: []string{"allow"}}}, ""},
		{Event{Alert: &Alert{Rule: Rule{ID: "VGL-1"}}}, "VGL-1"},
		{Event{Type: TypeProcessExec}, ""},
	} {
		if got := tc.ev.PolicyName(); got != tc.want {
			t.Errorf("PolicyName of %+v = %q, want %q", tc.ev, got, tc.want)
		}
	}
}

func TestFlagsString(t *testing.T) {
	for f, want := range map[Flags]string{
		0:                                 "",
		FlagExecve:                        "execve",
		FlagExecve | FlagRootCWD:          "execve rootcwd",
		FlagClone | FlagNoParent:          "clone nop",
		FlagProcFS | FlagTruncArgs:        "procFS truncArgs",
		FlagErrorFilename | FlagErrorArgs: "errorFilename errorArgs",
		// Tetragon's order and spelling.
		FlagClone | FlagRootCWD | FlagErrorCWD: "rootcwd errorCWD clone",
	} {
		if got := f.String(); got != want {
			t.Errorf("Flags(%#x).String() = %q, want %q", uint32(f), got, want)
		}
	}
}
