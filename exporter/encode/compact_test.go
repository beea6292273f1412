package encode

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/event"
)

// compactEvents are the compact test's own events (the shared fixtures
// change with the JSON encoder's needs).
func compactEvents() map[string]*event.Event {
	t := time.Date(2026, 3, 9, 7, 18, 21, 123456789, time.UTC)
	pod := &event.Pod{Namespace: "shop", Name: "web-7c9f8d-x2x4q"}
	curl := &event.Process{PID: 4242, Binary: "/usr/bin/curl", Arguments: "-s https://api.example.com/v1/orders", Pod: pod}
	sshd := &event.Process{PID: 1000, Binary: "/usr/sbin/sshd", Arguments: "-D"}
	kp := func(typ event.Type, p *event.Process, k *event.Kprobe) *event.Event {
		return &event.Event{Type: typ, Time: t, Process: p, Kprobe: k}
	}
	return map[string]*event.Event{
		"exec":        {Type: event.TypeProcessExec, Time: t, Process: curl},
		"exit signal": {Type: event.TypeProcessExit, Time: t, Process: curl, Exit: &event.Exit{Signal: 9}},
		"exit status": {Type: event.TypeProcessExit, Time: t, Process: sshd, Exit: &event.Exit{Status: 3}},
		"lsm override": kp(event.TypeProcessLSM, curl, &event.Kprobe{FunctionName: "bprm_check_security", Action: "KPROBE_ACTION_OVERRIDE",
			Errno: -1, PolicyName: "no-tmp-exec", Args: []event.Arg{{Kind: event.ArgBinprm, Str: "/tmp/xmrig"}}}),
		"monitor sigkill": kp(event.TypeProcessKprobe, curl, &event.Kprobe{FunctionName: "__x64_sys_ptrace", Action: "KPROBE_ACTION_SIGKILL",
			Monitor: true, PolicyName: "no-ptrace", Args: []event.Arg{{Kind: event.ArgInt, Int: 16}}}),
		"tracepoint": kp(event.TypeProcessTracepoint, sshd, &event.Kprobe{FunctionName: "syscalls/sys_enter_unshare", Action: "KPROBE_ACTION_POST",
			PolicyName: "namespaces", Args: []event.Arg{{Kind: event.ArgUint, Uint: 268435456}}}),
		"file open": kp(event.TypeProcessKprobe, sshd, &event.Kprobe{FunctionName: "security_file_open", Action: "KPROBE_ACTION_POST",
			PolicyName: "file-guard", Args: []event.Arg{{Kind: event.ArgFile, Str: "/etc/shadow"}}}),
		"connect": kp(event.TypeProcessKprobe, curl, &event.Kprobe{FunctionName: "tcp_connect", Action: "KPROBE_ACTION_POST", PolicyName: "net-watch",
			Args: []event.Arg{{Kind: event.ArgSock, Sock: &event.Sock{Saddr: netip.MustParseAddr("10.0.1.5"), Sport: 43512,
				Daddr: netip.MustParseAddr("10.0.2.9"), Dport: 5432}}}, Repeats: &event.Repeats{Count: 4}}),
		"flow": {Type: event.TypeFlow, Time: t, Process: curl, Flow: &event.Flow{Protocol: event.ProtoTCP,
			Source: netip.MustParseAddr("10.0.1.5"), SourcePort: 43512, Destination: netip.MustParseAddr("10.0.2.9"), DestinationPort: 5432,
			TCPFlags: event.TCPSYN, Verdict: event.VerdictDropped, EgressDeniedBy: []string{"shop/db-only"}}},
		"alert": {Type: event.TypeAlert, Time: t, Alert: &event.Alert{Rule: event.Rule{ID: "VGL-0007", Name: "Credential file read", Severity: "high"},
			Description: "curl read /etc/shadow", Event: &event.Event{Type: event.TypeProcessKprobe, Process: curl}}},
		"lost":      {Type: event.TypeLostEvents, Time: t, Lost: &event.Lost{Count: 1523, Reason: "queue_full", Sink: "webhook"}},
		"ratelimit": {Type: event.TypeRateLimitInfo, Time: t, RateLimit: &event.RateLimitInfo{NumberOfDroppedProcessEvents: 977}},
	}
}

func TestAppendCompact(t *testing.T) {
	evs := compactEvents()
	tests := []struct {
		event string
		want  string
	}{
		{"exec", `🚀 process shop/web-7c9f8d-x2x4q /usr/bin/curl -s https://api.example.com/v1/orders`},
		{"exit signal", `💥 exit    shop/web-7c9f8d-x2x4q /usr/bin/curl -s https://api.example.com/v1/orders SIGKILL`},
		{"exit status", `💥 exit    /usr/sbin/sshd -D 3`},
		{"lsm override", `📬 bprm_check_security shop/web-7c9f8d-x2x4q /usr/bin/curl /tmp/xmrig 🛑 OVERRIDE errno=-1 EPERM [no-tmp-exec]`},
		{"monitor sigkill", `🔍 ptrace  shop/web-7c9f8d-x2x4q /usr/bin/curl 16 🛑 would SIGKILL [no-ptrace]`},
		{"tracepoint", `🔍 sys_enter_unshare /usr/sbin/sshd 268435456 [namespaces]`},
		{"file open", `📬 file_open /usr/sbin/sshd /etc/shadow O_RDONLY [file-guard]`},
		{"connect", `🔌 tcp_connect shop/web-7c9f8d-x2x4q /usr/bin/curl 10.0.1.5:43512->10.0.2.9:5432 x4 [net-watch]`},
		{"flow", `🌐 flow    shop/web-7c9f8d-x2x4q /usr/bin/curl TCP 10.0.1.5:43512 -> 10.0.2.9:5432 SYN DROPPED by shop/db-only`},
		{"alert", `🚨 alert   shop/web-7c9f8d-x2x4q /usr/bin/curl HIGH Credential file read: curl read /etc/shadow [VGL-0007]`},
		{"lost", `⚠️ lost    1523 events (queue_full, sink webhook)`},
		{"ratelimit", `⚠️ ratelimit 977 events dropped by the rate limit`},
	}
	for _, tt := range tests {
		if got := string(AppendCompact(nil, evs[tt.event], CompactOptions{})); got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.event, got, tt.want)
		}
	}
	got := string(AppendCompact(nil, evs["exec"], CompactOptions{Timestamps: true}))
	if want := "2026-03-09T07:18:21.123Z 🚀 process "; !strings.HasPrefix(got, want) {
		t.Errorf("with timestamps: %q does not start with %q", got, want)
	}
	if colored := string(AppendCompact(nil, evs["flow"], CompactOptions{Color: true})); !strings.Contains(colored, ansiRed) {
		t.Errorf("dropped flow not red: %q", colored)
	}
	// Control characters in event data cannot reach the terminal.
	ev := *evs["exec"]
	p := *ev.Process
	p.Binary = "/tmp/\x1b[2Jevil"
	ev.Process = &p
	if got := string(AppendCompact(nil, &ev, CompactOptions{})); strings.ContainsRune(got, 0x1b) {
		t.Errorf("escape sequence passed through: %q", got)
	}
}

func BenchmarkAppendCompact(b *testing.B) {
	evs := compactEvents()
	for _, name := range []string{"exec", "lsm override", "flow"} {
		ev := evs[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 0, 512)
			for b.Loop() {
				buf = AppendCompact(buf[:0], ev, CompactOptions{Timestamps: true})
			}
		})
	}
}
