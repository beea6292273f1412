package encode

import (
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/event"
)

func TestAppendCompact(t *testing.T) {
	fx := fixtures()
	tests := []struct {
		fixture string
		want    string
	}{
		{"process_exec", `🚀 process shop/web-7c9f8d-x2x4q /usr/bin/curl -s -H "Authorization: Bearer x" https://api.example.com/v1/orders?id=42`},
		{"process_exit", `💥 exit    shop/web-7c9f8d-x2x4q /usr/bin/curl -s -H "Authorization: Bearer x" https://api.example.com/v1/orders?id=42 SIGKILL`},
		{"process_exit_status", `💥 exit    /usr/sbin/sshd -D 3`},
		{"process_lsm", `📬 bprm_check_security shop/web-7c9f8d-x2x4q /usr/bin/curl /tmp/xmrig 🛑 OVERRIDE errno=-1 EPERM [no-tmp-exec]`},
		{"process_kprobe_sigkill_monitor", `🔍 ptrace  shop/web-7c9f8d-x2x4q /usr/bin/curl 16 🛑 would SIGKILL [no-ptrace]`},
		{"process_tracepoint", `🔍 sys_enter_unshare /usr/sbin/sshd 268435456 [namespaces]`},
		{"flow", `🌐 flow    shop/web-7c9f8d-x2x4q /usr/bin/curl TCP 10.0.1.5:43512 -> 10.0.2.9:5432 SYN x3 DROPPED by shop/default-deny,db-only`},
		{"alert", `🚨 alert   shop/web-7c9f8d-x2x4q /usr/bin/curl HIGH Credential file read: curl read /etc/shadow in shop/web [VGL-0007]`},
		{"lost_events", `⚠️ lost    1523 events (queue_full, sink webhook)`},
		{"rate_limit_info", `⚠️ ratelimit 977 events dropped by the rate limit`},
	}
	for _, tt := range tests {
		if got := string(AppendCompact(nil, fx[tt.fixture], CompactOptions{})); got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.fixture, got, tt.want)
		}
	}
	ev := fx["process_exec"]
	got := string(AppendCompact(nil, ev, CompactOptions{Timestamps: true}))
	if want := ev.Time.UTC().Format("2006-01-02T15:04:05.000Z") + " 🚀 process "; !strings.HasPrefix(got, want) {
		t.Errorf("with timestamps: %q does not start with %q", got, want)
	}
	if colored := string(AppendCompact(nil, fx["flow"], CompactOptions{Color: true})); !strings.Contains(colored, ansiRed) {
		t.Errorf("dropped flow not red: %q", colored)
	}
	// A file opened, as a policy on security_file_open reports it.
	open := &event.Event{Type: event.TypeProcessKprobe, Time: time.Unix(0, 0), Process: fx["process_exec_host"].Process,
		Kprobe: &event.Kprobe{FunctionName: "security_file_open", PolicyName: "file-guard", Action: "KPROBE_ACTION_POST",
			Args: []event.Arg{{Kind: event.ArgFile, Str: "/etc/shadow"}}}}
	if got, want := string(AppendCompact(nil, open, CompactOptions{})), "📬 file_open /usr/sbin/sshd /etc/shadow O_RDONLY [file-guard]"; got != want {
		t.Errorf("file open:\n got %s\nwant %s", got, want)
	}
	// Control characters in event data cannot reach the terminal.
	host := *fx["process_exec_host"]
	p := *host.Process
	p.Binary = "/tmp/\x1b[2Jevil"
	host.Process = &p
	if got := string(AppendCompact(nil, &host, CompactOptions{})); strings.ContainsRune(got, 0x1b) {
		t.Errorf("escape sequence passed through: %q", got)
	}
}

func BenchmarkAppendCompact(b *testing.B) {
	fx := fixtures()
	for _, name := range []string{"process_exec", "process_lsm", "flow"} {
		ev := fx[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 0, 512)
			for b.Loop() {
				buf = AppendCompact(buf[:0], ev, CompactOptions{Timestamps: true})
			}
		})
	}
}
