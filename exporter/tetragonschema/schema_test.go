package tetragonschema

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestCheck runs lines in Tetragon's documented JSON shape and lines that a
// strict Tetragon parser refuses through Check.
func TestCheck(t *testing.T) {
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, line string
		event      string // want this event member
		err        string // want an error containing this
	}{
		{name: "exec", event: "process_exec",
			line: `{"process_exec":{"process":{"exec_id":"a","pid":1,"binary":"/bin/sh","start_time":"2026-11-22T07:18:21.123456789Z",` +
				`"cap":{"permitted":["CAP_CHOWN","DAC_OVERRIDE"]},"binary_properties":{"setuid":0,"privileges_changed":["PRIVILEGES_RAISED_EXEC_FILE_SETUID"],` +
				`"file":{"inode":{"number":"393228","links":1}}},"pod":{"pod_labels":{"app":"web"}}}},"node_name":"n","time":"2026-11-22T07:18:21Z"}`},
		{name: "kprobe args", event: "process_kprobe",
			line: `{"process_kprobe":{"function_name":"f","args":[{"int_arg":-4},{"long_arg":"-5"},{"size_arg":"18446744073709551615"},` +
				`{"bytes_arg":"AAEC/v8="},{"sock_arg":{"cookie":"1","sport":1}}],"action":"KPROBE_ACTION_SIGKILL"}}`},
		{name: "camelCase names", event: "rate_limit_info", line: `{"rateLimitInfo":{"numberOfDroppedProcessEvents":"3"}}`},
		{name: "unknown field", err: `unknown field "cgroup_id"`,
			line: `{"process_exec":{"process":{"cgroup_id":1}}}`},
		{name: "Vigil capability name", err: `CAP_DAC_OVERRIDE`,
			line: `{"process_exec":{"process":{"cap":{"effective":["CAP_DAC_OVERRIDE"]}}}}`},
		{name: "int32 overflow", err: `int32 field intArg`,
			line: `{"process_kprobe":{"args":[{"int_arg":4294967296}]}}`},
		{name: "two members of a oneof", err: `oneof`,
			line: `{"process_kprobe":{"args":[{"int_arg":1,"uint_arg":2}]}}`},
		{name: "two events", err: `oneof`,
			line: `{"process_exec":{},"process_exit":{}}`},
		{name: "duplicate key", err: `duplicate`,
			line: `{"process_exit":{"status":1,"status":2}}`},
		{name: "unknown event", err: `unknown field "flow"`, line: `{"flow":{}}`},
		{name: "no event", err: ErrNoEvent.Error(), line: `{"node_name":"n"}`},
		{name: "bad time", err: `invalid google.protobuf.Timestamp`, line: `{"process_exit":{},"time":"yesterday"}`},
		{name: "bool as string", err: `bool field isHost`,
			line: `{"process_exec":{"process":{"ns":{"pid":{"inum":1,"is_host":"true"}}}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := s.Check([]byte(tc.line))
			if tc.err == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				if ev != tc.event {
					t.Fatalf("event %q, want %q", ev, tc.event)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Check: %v, want an error containing %q", err, tc.err)
			}
		})
	}
}

// TestSchemaHasEveryEventType guards the generated data: the messages the
// export maps to must be in it with their members.
func TestSchemaHasEveryEventType(t *testing.T) {
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.Source, "cilium/tetragon@") {
		t.Errorf("Source %q does not name the Tetragon commit", s.Source)
	}
	oneof := s.Events().Oneofs().ByName("event")
	var got []string
	for i := 0; i < oneof.Fields().Len(); i++ {
		got = append(got, string(oneof.Fields().Get(i).Name()))
	}
	for _, want := range []string{"process_exec", "process_exit", "process_kprobe", "process_tracepoint", "process_lsm",
		"process_uprobe", "process_loader", "process_throttle", "rate_limit_info"} {
		if !strings.Contains(strings.Join(got, " "), want) {
			t.Errorf("GetEventsResponse.event has %v, no %s", got, want)
		}
	}
}

// TestRecordedLines parses, strictly, the lines an agent wrote with
// --export-format tetragon in a privileged run (agent/tests/export,
// recorded with -record): exec, exit, tracepoint and syscall hooks with
// arguments, a Sigkill, and rate_limit_info.
func TestRecordedLines(t *testing.T) {
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("testdata/recorded.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for i, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		kind, err := s.Check(line)
		if err != nil {
			t.Errorf("testdata/recorded.jsonl:%d: %v", i+1, err)
		}
		kinds[kind]++
	}
	for _, want := range []string{"process_exec", "process_exit", "process_kprobe", "process_tracepoint", "rate_limit_info"} {
		if kinds[want] == 0 {
			t.Errorf("testdata/recorded.jsonl has no %s line (%v)", want, kinds)
		}
	}
}
