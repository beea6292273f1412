package encode

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/event"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the encoder's output")

// TestGolden compares the encoding of every fixture with testdata/<name>.golden.
// Run `go test ./exporter/encode -run TestGolden -update` after an intended
// change of the JSON shape, and review the diff: it is the users' contract.
func TestGolden(t *testing.T) {
	fx := fixtures()
	names := make([]string, 0, len(fx))
	for n := range fx {
		names = append(names, n)
	}
	sort.Strings(names)
	seen := map[event.Type]bool{}
	for _, name := range names {
		ev := fx[name]
		seen[ev.Type] = true
		t.Run(name, func(t *testing.T) {
			got := append(AppendJSON(nil, ev, nodeName, nil), '\n')
			path := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("encoding of %s differs from %s (-want +got):\n%s", name, path, diff)
			}
			checkShape(t, got, ev.Type)
		})
	}
	for _, typ := range event.Types() {
		if !seen[typ] {
			t.Errorf("no golden file for event type %s", typ)
		}
	}
}

// checkShape decodes line with encoding/json and checks the envelope: one
// event key named after typ, node_name and time.
func checkShape(t *testing.T, line []byte, typ event.Type) map[string]json.RawMessage {
	t.Helper()
	if !json.Valid(line) {
		t.Fatalf("invalid JSON: %s", line)
	}
	var top map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&top); err != nil {
		t.Fatalf("decode: %v\n%s", err, line)
	}
	var keys []string
	for k := range top {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	want := []string{"node_name", "time", typ.String()}
	sort.Strings(want)
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Fatalf("top-level keys (-want +got):\n%s", diff)
	}
	var ts string
	if err := json.Unmarshal(top["time"], &ts); err != nil {
		t.Fatal(err)
	}
	if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || !strings.HasSuffix(ts, "Z") || len(ts) != len("2026-11-22T07:18:21.123456789Z") {
		t.Errorf("time %q is not RFC 3339 UTC with nanoseconds (%v)", ts, err)
	}
	return top
}

// TestFieldValues decodes events and checks the values users read most, so
// that a wrong golden file cannot hide a wrong mapping.
func TestFieldValues(t *testing.T) {
	fx := fixtures()
	decode := func(ev *event.Event) map[string]any {
		var m map[string]any
		if err := json.Unmarshal(AppendJSON(nil, ev, nodeName, nil), &m); err != nil {
			t.Fatal(err)
		}
		return m[ev.Type.String()].(map[string]any)
	}
	get := func(m any, path string) any {
		for _, p := range strings.Split(path, ".") {
			switch x := m.(type) {
			case map[string]any:
				m = x[p]
			case []any:
				i, err := strconv.Atoi(p)
				if err != nil || i >= len(x) {
					return nil
				}
				m = x[i]
			default:
				return nil
			}
		}
		return m
	}
	tests := []struct {
		fixture, path string
		want          any
	}{
		{"process_exec", "process.binary", "/usr/bin/curl"},
		{"process_exec", "process.pid", 4242.0},
		{"process_exec", "process.arguments", `-s -H "Authorization: Bearer x" https://api.example.com/v1/orders?id=42`},
		{"process_exec", "process.flags", "execve clone"},
		{"process_exec", "process.start_time", "2026-11-22T07:18:20.000005000Z"},
		{"process_exec", "process.cap.effective.0", "CAP_CHOWN"},
		{"process_exec", "process.ns.pid.inum", 4026532801.0},
		{"process_exec", "process.process_credentials.euid", 0.0},
		{"process_exec", "process.binary_properties.setuid", 0.0},
		{"process_exec", "process.binary_properties.file.inode.number", "393228"},
		{"process_exec", "process.pod.namespace", "shop"},
		{"process_exec", "process.pod.pod_labels.app", "web"},
		{"process_exec", "process.pod.container.image.name", "registry.example.com/shop/web:1.4.2"},
		{"process_exec", "parent.binary", "/bin/sh"},
		{"process_exec_host", "process.ns.net.is_host", true},
		{"process_exec_host", "process.cap.permitted.40", "CAP_CHECKPOINT_RESTORE"},
		{"process_exit", "signal", "SIGKILL"},
		{"process_exit", "status", 0.0},
		{"process_exit_status", "status", 3.0},
		{"process_exit_status", "signal", nil},
		{"process_kprobe", "function_name", "security_file_open"},
		{"process_kprobe", "args.0.file_arg.path", "/etc/shadow"},
		{"process_kprobe", "args.0.file_arg.open_flags", "O_RDONLY"},
		{"process_kprobe", "args.0.label", "file"},
		{"process_kprobe", "args.1.int_arg", -4.0},
		{"process_kprobe", "args.3.size_arg", "1099511627776"},
		{"process_kprobe", "args.4.string_arg", "tab\there \"quoted\" \x01 \\xff end"},
		{"process_kprobe", "args.5.bytes_arg", "AAEC/v8="},
		{"process_kprobe", "args.6.path_arg.permission", "-rwsr-xr-x"},
		{"process_kprobe", "args.8.sock_arg.family", "AF_INET"},
		{"process_kprobe", "args.8.sock_arg.type", "SOCK_STREAM"},
		{"process_kprobe", "args.8.sock_arg.protocol", "IPPROTO_TCP"},
		{"process_kprobe", "args.8.sock_arg.state", "TCP_ESTABLISHED"},
		{"process_kprobe", "args.8.sock_arg.cookie", "18446744073709551557"},
		{"process_kprobe", "args.8.sock_arg.dport", 5432.0},
		{"process_kprobe", "args.9.skb_arg.daddr", "fd00::9"},
		{"process_kprobe", "return.int_arg", -1.0},
		{"process_kprobe", "action", "KPROBE_ACTION_OVERRIDE"},
		{"process_kprobe", "errno", -1.0},
		{"process_kprobe", "mechanism", "fentry"},
		{"process_kprobe", "monitor", nil},
		{"process_kprobe_sigkill_monitor", "monitor", true},
		{"process_kprobe_sigkill_monitor", "signal", "SIGKILL"},
		{"process_tracepoint", "subsys", "syscalls"},
		{"process_tracepoint", "event", "sys_enter_unshare"},
		{"process_tracepoint", "function_name", nil},
		{"process_lsm", "function_name", "bprm_check_security"},
		{"flow", "verdict", "DROPPED"},
		{"flow", "IP.ipVersion", "IPv4"},
		{"flow", "l4.TCP.destination_port", 5432.0},
		{"flow", "l4.TCP.flags.SYN", true},
		{"flow", "source.workloads.0.kind", "Deployment"},
		{"flow", "destination.pod_name", "postgres-0"},
		{"flow", "traffic_direction", "EGRESS"},
		{"flow", "egress_denied_by.0.namespace", "shop"},
		{"flow", "egress_denied_by.1.name", "db-only"},
		{"flow", "process.binary", "/usr/bin/curl"},
		{"flow", "count", 3.0},
		{"flow", "Summary", "TCP Flags: SYN"},
		{"flow_udp_end", "IP.ipVersion", "IPv6"},
		{"flow_udp_end", "l4.UDP.destination_port", 53.0},
		{"flow_udp_end", "bytes_received", 480.0},
		{"flow_udp_end", "count", nil},
		{"alert", "rule.mitre.technique", "T1003.008"},
		{"alert", "event.process_kprobe.function_name", "security_file_open"},
		{"alert", "event.node_name", "node-a"},
		{"alert", "pod.name", "web-7c9f8d-x2x4q"},
		{"alert", "process.exec_id", "bm9kZS1hOjEyMzQ1Njc4OTAxMjM0OjQyNDI="},
		{"lost_events", "count", 1523.0},
		{"lost_events", "reason", "queue_full"},
		{"rate_limit_info", "number_of_dropped_process_events", "977"},
	}
	for _, tt := range tests {
		t.Run(tt.fixture+"/"+tt.path, func(t *testing.T) {
			got := get(decode(fx[tt.fixture]), tt.path)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestAppendStringMatchesDecoder(t *testing.T) {
	for _, s := range []string{
		"", "plain", "quote\"back\\slash", "\x00\x01\x1f\x7f", "\n\r\t\b\f",
		"é ü 日本 🚀", "bad \xff\xfe utf8", "truncated \xe6\x97", "</script>&amp;", "\u2028\u2029",
	} {
		enc := AppendString(nil, s)
		var got string
		if err := json.Unmarshal(enc, &got); err != nil {
			t.Fatalf("%q encoded as %s: %v", s, enc, err)
		}
		if want := validUTF8(s); got != want {
			t.Errorf("%q: decoded %q, want %q", s, got, want)
		}
	}
}

// validUTF8 replaces each invalid byte by U+FFFD, as the encoder does.
func validUTF8(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r)
	}
	return b.String()
}

func TestAppendTime(t *testing.T) {
	for _, tt := range []struct {
		in   time.Time
		want string
	}{
		{time.Date(2026, 11, 22, 7, 18, 21, 123456789, time.UTC), `"2026-11-22T07:18:21.123456789Z"`},
		{time.Date(2024, 2, 29, 23, 59, 59, 1, time.FixedZone("x", 3600)), `"2024-02-29T22:59:59.000000001Z"`},
		{time.Date(2000, 3, 1, 0, 0, 0, 0, time.UTC), `"2000-03-01T00:00:00.000000000Z"`},
		{time.Unix(0, 0), `"1970-01-01T00:00:00.000000000Z"`},
		{time.Date(1969, 12, 31, 23, 59, 59, 5, time.UTC), `"1969-12-31T23:59:59.000000005Z"`},
	} {
		if got := string(appendTime(nil, tt.in)); got != tt.want {
			t.Errorf("appendTime(%v) = %s, want %s", tt.in, got, tt.want)
		}
	}
	// Every day for 150 years agrees with the standard library.
	for d := time.Date(1970, 1, 1, 12, 0, 0, 0, time.UTC); d.Year() < 2120; d = d.AddDate(0, 0, 1) {
		want := `"` + d.Format("2006-01-02T15:04:05.000000000Z") + `"`
		if got := string(appendTime(nil, d)); got != want {
			t.Fatalf("appendTime(%v) = %s, want %s", d, got, want)
		}
	}
}

func TestEncodeDoesNotAllocate(t *testing.T) {
	fx := fixtures()
	buf := make([]byte, 0, 64<<10)
	for name, ev := range fx {
		buf = AppendJSON(buf[:0], ev, nodeName, nil) // warm the capability cache
		if n := testing.AllocsPerRun(100, func() { buf = AppendJSON(buf[:0], ev, nodeName, nil) }); n != 0 {
			t.Errorf("%s: %v allocations per encode, want 0", name, n)
		}
	}
}

func TestEncoderMatchesAppendJSON(t *testing.T) {
	enc := NewEncoder(nil)
	for name, ev := range fixtures() {
		want := AppendJSON(nil, ev, nodeName, nil)
		for i := 0; i < 3; i++ { // the second and third encodes hit the caches
			if got := enc.AppendJSON(nil, ev, nodeName); !bytes.Equal(got, want) {
				t.Fatalf("%s, encode %d: Encoder output differs:\n got %s\nwant %s", name, i, got, want)
			}
		}
	}
	// A new process value at the same position in the stream is encoded
	// afresh, not served from the cache.
	ev := fixtures()["process_exec"]
	first := enc.AppendJSON(nil, ev, nodeName)
	p := *ev.Process
	p.Binary = "/usr/bin/wget"
	ev2 := *ev
	ev2.Process = &p
	second := enc.AppendJSON(nil, &ev2, nodeName)
	if bytes.Equal(first, second) || !bytes.Contains(second, []byte(`"binary":"/usr/bin/wget"`)) {
		t.Fatalf("changed process encoded as %s", second)
	}
}

func TestRedactOption(t *testing.T) {
	ev := fixtures()["process_exec"]
	opts := &Options{Redact: func(s string) string { return strings.ReplaceAll(s, "Bearer x", "Bearer *****") }}
	for _, line := range [][]byte{AppendJSON(nil, ev, nodeName, opts), NewEncoder(opts).AppendJSON(nil, ev, nodeName)} {
		if bytes.Contains(line, []byte("Bearer x")) || !bytes.Contains(line, []byte(`Bearer *****`)) {
			t.Fatalf("arguments not redacted: %s", line)
		}
	}
}

// Environment variables are redacted as KEY=VALUE, so a pattern can name
// the variable; a variable no pattern matches is written as it is.
func TestRedactEnvironment(t *testing.T) {
	ev := fixtures()["process_exec"]
	opts := &Options{Redact: func(s string) string {
		return strings.ReplaceAll(s, "GLIBC_TUNABLES=glibc.malloc.check=1", "GLIBC_TUNABLES=*****")
	}}
	var got struct {
		Exec struct {
			Process struct {
				Env []struct{ Key, Value string } `json:"environment_variables"`
			} `json:"process"`
		} `json:"process_exec"`
	}
	if err := json.Unmarshal(AppendJSON(nil, ev, nodeName, opts), &got); err != nil {
		t.Fatal(err)
	}
	want := []struct{ Key, Value string }{{"LD_PRELOAD", "/tmp/.x/libhook.so"}, {"GLIBC_TUNABLES", "*****"}}
	if diff := cmp.Diff(want, got.Exec.Process.Env); diff != "" {
		t.Errorf("environment_variables (-want +got):\n%s", diff)
	}
}

func TestAppendText(t *testing.T) {
	fx := fixtures()
	tests := []struct {
		fixture string
		want    string
	}{
		{"process_exec", `07:18:21.123 shop/web-7c9f8d-x2x4q /usr/bin/curl[4242] exec -s -H "Authorization: Bearer x" https://api.example.com/v1/orders?id=42`},
		{"process_exit", `07:18:21.123 shop/web-7c9f8d-x2x4q /usr/bin/curl[4242] exit SIGKILL`},
		{"process_exit_status", `07:18:21.123 host /usr/sbin/sshd[1000] exit status=3`},
		{"process_lsm", `07:18:21.123 shop/web-7c9f8d-x2x4q /usr/bin/curl[4242] lsm:bprm_check_security /tmp/xmrig OVERRIDE errno=-1`},
		{"process_kprobe_sigkill_monitor", `07:18:21.123 shop/web-7c9f8d-x2x4q /usr/bin/curl[4242] __x64_sys_ptrace 16 would SIGKILL`},
		{"process_tracepoint", `07:18:21.123 host /usr/sbin/sshd[1000] syscalls/sys_enter_unshare 268435456 = 0`},
		{"flow", `07:18:21.123 shop/web-7c9f8d-x2x4q /usr/bin/curl[4242] TCP 10.0.1.5:43512 -> 10.0.2.9:5432 SYN x3 DROPPED`},
		{"alert", `07:18:21.123 shop/web-7c9f8d-x2x4q /usr/bin/curl[4242] ALERT HIGH Credential file read: curl read /etc/shadow in shop/web`},
		{"lost_events", `07:18:21.123 - lost 1523 events (queue_full, sink webhook)`},
		{"rate_limit_info", `07:18:21.123 - rate limit dropped 977 events`},
	}
	for _, tt := range tests {
		if got := string(AppendText(nil, fx[tt.fixture], TextOptions{})); got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.fixture, got, tt.want)
		}
	}
	colored := string(AppendText(nil, fx["flow"], TextOptions{Color: true}))
	if !strings.Contains(colored, ansiRed) {
		t.Errorf("dropped flow not red: %q", colored)
	}
	// Control characters in event data cannot reach the terminal.
	ev := *fx["process_exec_host"]
	p := *ev.Process
	p.Binary = "/tmp/\x1b[2Jevil"
	ev.Process = &p
	if got := string(AppendText(nil, &ev, TextOptions{})); strings.ContainsRune(got, 0x1b) {
		t.Errorf("escape sequence passed through: %q", got)
	}
}
