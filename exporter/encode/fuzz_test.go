package encode

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/event"
)

// FuzzAppendJSON builds events of every type from fuzzed strings and numbers
// and checks that each encodes to valid JSON that encoding/json decodes,
// with the envelope intact and strings round-tripping (invalid UTF-8
// replaced), through both AppendJSON and a caching Encoder.
func FuzzAppendJSON(f *testing.F) {
	f.Add(uint8(1), "/usr/bin/curl", "-s https://x", "shop", "web", "app", "web", []byte{1, 2}, int64(-4), uint64(9), int64(1700000000))
	f.Add(uint8(5), "bad\xff\xfe", "\x00\x1f\"\\", "</script>", "\u2028", "k\n", "v\t", []byte{}, int64(0), uint64(0), int64(-1))
	f.Add(uint8(7), "", "", "", "", "", "", []byte(nil), int64(1<<62), uint64(1<<63), int64(253402300800))
	f.Add(uint8(4), "syscalls/sys_enter_openat", "a b 'c'", "ns", "", "", "", []byte("x"), int64(21), uint64(1<<41-1), int64(0))
	enc := NewEncoder(&Options{Redact: func(s string) string { return s + "\xff" }})
	f.Fuzz(func(t *testing.T, typ uint8, s1, s2, s3, s4, s5, s6 string, raw []byte, i int64, u uint64, sec int64) {
		ev := fuzzEvent(event.Type(typ%uint8(len(event.Types())+1)), s1, s2, s3, s4, s5, s6, raw, i, u, sec)
		for _, line := range [][]byte{
			AppendJSON(nil, ev, s3, nil),
			enc.AppendJSON(nil, ev, s3),
			enc.AppendJSON(nil, ev, s3), // a cache hit must encode the same
		} {
			if !json.Valid(line) {
				t.Fatalf("invalid JSON: %q", line)
			}
			var top map[string]json.RawMessage
			if err := json.Unmarshal(line, &top); err != nil {
				t.Fatalf("decode: %v: %q", err, line)
			}
			if len(top) != 3 || top["node_name"] == nil || top["time"] == nil || top[ev.Type.String()] == nil {
				t.Fatalf("bad envelope %q", line)
			}
			var node string
			if err := json.Unmarshal(top["node_name"], &node); err != nil || node != validUTF8(s3) {
				t.Fatalf("node_name %q (%v), want %q", node, err, validUTF8(s3))
			}
		}
		if ev.Process != nil {
			line := AppendJSON(nil, ev, "", nil)
			var top map[string]json.RawMessage
			var body map[string]json.RawMessage
			if err := json.Unmarshal(line, &top); err != nil {
				t.Fatalf("decode %q: %v", line, err)
			}
			if err := json.Unmarshal(top[ev.Type.String()], &body); err != nil {
				t.Fatalf("decode %q: %v", line, err)
			}
			var p struct {
				Binary string `json:"binary"`
				PID    uint32 `json:"pid"`
			}
			if raw := body["process"]; raw != nil {
				if err := json.Unmarshal(raw, &p); err != nil {
					t.Fatal(err)
				}
				if got, ok := readBytes(p.Binary); !ok || got != s1 || p.PID != uint32(u) {
					t.Fatalf("process binary %q (reads as %q) pid %d, want %q %d", p.Binary, got, p.PID, s1, uint32(u))
				}
			}
		}
		if bytes.Contains(AppendText(nil, ev, TextOptions{}), []byte{'\n'}) {
			t.Fatalf("text format of %v contains a newline", ev.Type)
		}
		if c := AppendCompact(nil, ev, CompactOptions{Timestamps: true}); bytes.ContainsAny(c, "\n\x1b") {
			t.Fatalf("compact format of %v contains a newline or an escape: %q", ev.Type, c)
		}
	})
}

func fuzzEvent(typ event.Type, s1, s2, s3, s4, s5, s6 string, raw []byte, i int64, u uint64, sec int64) *event.Event {
	ts := time.Unix(sec, i%1e9)
	pod := &event.Pod{Namespace: s3, Name: s4, UID: s2, Labels: []event.Label{{Key: s5, Value: s6}},
		Workload: s4, WorkloadKind: s5, Container: event.Container{ID: s2, Name: s4, ImageName: s5, ImageID: s6, StartTime: ts}}
	setuid := uint32(u)
	proc := &event.Process{ExecID: s2, ParentExecID: s3, PID: uint32(u), TID: uint32(u >> 32), UID: uint32(i),
		CWD: s2, Binary: s1, Arguments: s2, Flags: event.Flags(u), StartTime: ts,
		CapPermitted: u, CapEffective: uint64(i), CapInheritable: u ^ uint64(i),
		Namespaces: event.Namespaces{PidInum: uint32(u), NetInum: uint32(i), PidIsHost: i%2 == 0},
		CgroupID:   u, BinaryProperties: event.BinaryProperties{Setuid: &setuid, InodeNumber: u, Memfd: i%3 == 0},
	}
	if len(s4)%2 == 0 {
		proc.Pod = pod
	}
	parent := &event.Process{ExecID: s3, Binary: s5, Arguments: s6, Pod: proc.Pod}
	addr, _ := netip.AddrFromSlice(raw)
	sock := &event.Sock{Family: uint16(u), Type: uint16(i), Protocol: uint16(u >> 16), State: uint8(i),
		Saddr: addr, Daddr: addr, Sport: uint16(u), Dport: uint16(i), Cookie: u}
	args := []event.Arg{}
	for k := event.ArgInt; k <= event.ArgCapEffective+1; k++ {
		args = append(args, event.Arg{Kind: k, Label: s6, Int: i, Uint: u, Str: s5, Bytes: raw,
			Truncated: i%2 == 1, Flags: uint32(u), Sock: sock, Cred: &event.Credentials{UID: uint32(u)}})
	}
	ev := &event.Event{Type: typ, Time: ts, Process: proc, Parent: parent}
	switch typ {
	case event.TypeProcessExit:
		ev.Exit = &event.Exit{Status: uint32(i), Signal: uint32(u % 70), CoreDumped: i%2 == 0}
	case event.TypeProcessKprobe, event.TypeProcessTracepoint, event.TypeProcessLSM:
		ev.Kprobe = &event.Kprobe{FunctionName: s1, Mechanism: s2, Args: args, Return: &args[int(u%uint64(len(args)))],
			Action: s3, Monitor: i%2 == 0, ActionNote: s4, Errno: int32(i), Signal: uint32(u % 70),
			PolicyName: s5, Message: s6, Tags: []string{s1, s6}}
	case event.TypeFlow:
		ev.Flow = &event.Flow{Phase: event.FlowPhase(u % 5), Verdict: event.Verdict(i % 5), DropReasonDesc: s1,
			Source: addr, Destination: addr, Protocol: uint8(u), SourcePort: uint16(u), DestinationPort: uint16(i),
			TCPFlags: event.TCPFlags(u), SourceEndpoint: event.Endpoint{Identity: uint32(u), Namespace: s3,
				PodName: s4, Labels: []string{s5}, Workloads: []event.Workload{{Name: s6, Kind: s1}}},
			Direction: event.Direction(u % 4), IsReply: i%2 == 0, EgressDeniedBy: []string{s2},
			IngressDeniedBy: []string{s3}, PolicyNames: []string{s4}, BytesSent: u, Count: uint64(i)}
	case event.TypeAlert:
		inner := &event.Event{Type: event.TypeProcessKprobe, Time: ts, Process: proc,
			Kprobe: &event.Kprobe{FunctionName: s1, Args: args}}
		ev.Alert = &event.Alert{Rule: event.Rule{ID: s1, Name: s2, Severity: s3, Tactic: s4, Technique: s5, Tags: []string{s6}},
			Description: s2, Event: inner}
		if i%2 == 0 {
			ev.Process, ev.Parent = nil, nil
			ev.Alert.Event = &event.Event{Type: event.TypeAlert, Time: ts, Alert: &event.Alert{Event: inner}}
		}
	case event.TypeLostEvents:
		ev.Process, ev.Parent = nil, nil
		ev.Lost = &event.Lost{Count: u, Reason: s1, Sink: s2}
	case event.TypeRateLimitInfo:
		ev.Process, ev.Parent = nil, nil
		ev.RateLimit = &event.RateLimitInfo{NumberOfDroppedProcessEvents: u}
	}
	return ev
}

// readBytes undoes AppendBytes: a value without a backslash is the bytes
// themselves; otherwise \\ is a backslash and \xNN a byte. It reports
// false for a value AppendBytes cannot have written.
func readBytes(s string) (string, bool) {
	if !strings.Contains(s, `\`) {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case i+1 < len(s) && s[i+1] == '\\':
			b.WriteByte('\\')
			i++
		case i+3 < len(s) && s[i+1] == 'x':
			n, err := strconv.ParseUint(s[i+2:i+4], 16, 8)
			if err != nil {
				return "", false
			}
			b.WriteByte(byte(n))
			i += 3
		default:
			return "", false
		}
	}
	return b.String(), true
}
