package encode

import (
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/event"
)

// CompactOptions change the compact format (`vigil events -o compact`).
type CompactOptions struct {
	// Color adds ANSI colour: red for enforcement, drops and alerts.
	Color bool
	// Timestamps starts each line with the event's time (RFC 3339, UTC).
	Timestamps bool
}

// AppendCompact appends one readable line for ev, without a newline, in
// the shape of Tetragon's compact output (`tetra getevents -o compact`):
// an icon and a verb, the pod (namespace/name, nothing on the host), the
// binary, then what happened:
//
//	🚀 process shop/web-7c9f8d-x2x4q /usr/bin/curl -s https://api.example.com
//	💥 exit    shop/web-7c9f8d-x2x4q /usr/bin/curl -s https://api.example.com SIGKILL
//	📬 open    /usr/bin/cat /etc/shadow O_RDONLY 🛑 OVERRIDE errno=-1 EPERM [file-guard]
//	🔌 connect /usr/bin/curl 10.0.1.5:43512 -> 10.0.2.9:5432 [net-watch]
//	🌐 flow    shop/web /usr/bin/psql TCP 10.0.1.5:43512 -> 10.0.2.9:5432 SYN DROPPED
//	🚨 alert   shop/web /usr/bin/curl HIGH Credential file read: ...
//	⚠️ lost    1523 events (queue_full, sink webhook)
//
// Policy events name their policy in brackets; an action not taken because
// the policy is in monitor mode reads "would SIGKILL". Control characters
// in event data are shown escaped.
func AppendCompact(dst []byte, ev *event.Event, opts CompactOptions) []byte {
	if opts.Timestamps {
		dst = ev.Time.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z")
		dst = append(dst, ' ')
	}
	proc := ev.Process
	if proc == nil && ev.Alert != nil && ev.Alert.Event != nil {
		proc = ev.Alert.Event.Process
	}
	icon, verb := compactVerb(ev)
	dst = append(dst, icon...)
	dst = append(dst, ' ')
	dst = appendText(dst, verb) // a hook's name comes from the policy
	for n := len(verb); n < 7; n++ {
		dst = append(dst, ' ')
	}
	if proc != nil {
		if proc.Pod != nil {
			dst = append(dst, ' ')
			dst = appendText(dst, proc.Pod.Namespace)
			dst = append(dst, '/')
			dst = appendText(dst, proc.Pod.Name)
		}
		dst = append(dst, ' ')
		dst = appendText(dst, proc.Binary)
	}
	color := func(c string) {
		if opts.Color {
			dst = append(dst, c...)
		}
	}
	reset := func() { color(ansiReset) }
	switch ev.Type {
	case event.TypeProcessExec:
		dst = appendCompactArgs(dst, proc)
	case event.TypeProcessExit:
		dst = appendCompactArgs(dst, proc)
		if x := ev.Exit; x != nil {
			dst = append(dst, ' ')
			if x.Signal != 0 {
				color(ansiRed)
				dst = appendSignal(dst, x.Signal)
				reset()
			} else {
				dst = strconv.AppendUint(dst, uint64(x.Status), 10)
			}
		}
	case event.TypeProcessKprobe, event.TypeProcessTracepoint, event.TypeProcessLSM, event.TypeProcessUprobe, event.TypeProcessUsdt:
		dst = appendCompactPolicyEvent(dst, ev, opts)
	case event.TypeFlow:
		dst = append(dst, ' ')
		dst = appendFlowText(dst, ev.Flow, TextOptions{Color: opts.Color})
		if f := ev.Flow; f != nil {
			for _, by := range [][]string{f.EgressDeniedBy, f.IngressDeniedBy} {
				if len(by) > 0 {
					dst = append(dst, " by "...)
					dst = appendText(dst, strings.Join(by, ","))
				}
			}
		}
	case event.TypeAlert:
		a := ev.Alert
		if a == nil {
			a = &event.Alert{}
		}
		dst = append(dst, ' ')
		color(ansiRed + ansiBold)
		if a.Rule.Severity != "" {
			dst = appendText(dst, strings.ToUpper(a.Rule.Severity))
			dst = append(dst, ' ')
		}
		name := a.Rule.Name
		if name == "" {
			name = a.Rule.ID
		}
		dst = appendText(dst, name)
		reset()
		if a.Description != "" {
			dst = append(dst, ": "...)
			dst = appendText(dst, a.Description)
		}
		if a.Rule.ID != "" && a.Rule.ID != name {
			dst = append(dst, " ["...)
			dst = appendText(dst, a.Rule.ID)
			dst = append(dst, ']')
		}
	case event.TypeLostEvents:
		var l event.Lost
		if ev.Lost != nil {
			l = *ev.Lost
		}
		dst = append(dst, ' ')
		color(ansiYellow)
		dst = strconv.AppendUint(dst, l.Count, 10)
		dst = append(dst, " events ("...)
		dst = appendText(dst, l.Reason)
		if l.Sink != "" {
			dst = append(dst, ", sink "...)
			dst = appendText(dst, l.Sink)
		}
		dst = append(dst, ')')
		reset()
	case event.TypeRateLimitInfo:
		var n uint64
		if ev.RateLimit != nil {
			n = ev.RateLimit.NumberOfDroppedProcessEvents
		}
		dst = append(dst, ' ')
		color(ansiYellow)
		dst = strconv.AppendUint(dst, n, 10)
		dst = append(dst, " events dropped by the rate limit"...)
		reset()
	}
	return dst
}

// compactVerb names what an event is about, with its icon.
func compactVerb(ev *event.Event) (icon, verb string) {
	switch ev.Type {
	case event.TypeProcessExec:
		return "🚀", "process"
	case event.TypeProcessExit:
		return "💥", "exit"
	case event.TypeFlow:
		return "🌐", "flow"
	case event.TypeAlert:
		return "🚨", "alert"
	case event.TypeLostEvents:
		return "⚠️", "lost"
	case event.TypeRateLimitInfo:
		return "⚠️", "ratelimit"
	case event.TypeProcessKprobe, event.TypeProcessTracepoint, event.TypeProcessLSM, event.TypeProcessUprobe, event.TypeProcessUsdt:
		k := ev.Kprobe
		if k == nil {
			return "🔍", ev.Type.String()
		}
		name := shortFunction(k.FunctionName)
		for i := range k.Args {
			switch k.Args[i].Kind {
			case event.ArgFile, event.ArgPath, event.ArgBinprm:
				return "📬", name
			case event.ArgSock, event.ArgSockaddr, event.ArgSkb:
				return "🔌", name
			}
		}
		switch {
		case strings.Contains(name, "open"):
			return "📬", name
		case strings.Contains(name, "connect"):
			return "🔌", name
		}
		return "🔍", name
	}
	return "❓", ev.Type.String()
}

// shortFunction drops the architecture and syscall prefixes of a hook's
// name: __x64_sys_openat and sys_openat are "openat", security_file_open
// is "file_open", syscalls/sys_enter_unshare is "sys_enter_unshare".
func shortFunction(fn string) string {
	if i := strings.LastIndexByte(fn, '/'); i >= 0 {
		fn = fn[i+1:]
	}
	for _, p := range []string{"__x64_sys_", "__arm64_sys_", "__ia32_sys_", "__se_sys_", "__do_sys_", "ksys_", "sys_", "security_", "bpf_lsm_"} {
		if rest, ok := strings.CutPrefix(fn, p); ok && rest != "" && !strings.HasPrefix(rest, "enter_") && !strings.HasPrefix(rest, "exit_") {
			return rest
		}
	}
	return fn
}

func appendCompactArgs(dst []byte, proc *event.Process) []byte {
	if proc == nil || proc.Arguments == "" {
		return dst
	}
	dst = append(dst, ' ')
	args := proc.Arguments
	if len(args) > maxTextArgs {
		return append(appendText(dst, args[:maxTextArgs]), "..."...)
	}
	return appendText(dst, args)
}

func appendCompactPolicyEvent(dst []byte, ev *event.Event, opts CompactOptions) []byte {
	k := ev.Kprobe
	if k == nil {
		return dst
	}
	for i := range k.Args {
		dst = append(dst, ' ')
		dst = appendArgText(dst, &k.Args[i])
	}
	if k.Return != nil {
		dst = append(dst, " = "...)
		dst = appendArgText(dst, k.Return)
	}
	if action := strings.TrimPrefix(k.Action, "KPROBE_ACTION_"); action != "" && action != "POST" {
		dst = append(dst, ' ')
		if opts.Color {
			dst = append(dst, ansiRed+ansiBold...)
		}
		dst = append(dst, "🛑 "...)
		if k.Monitor {
			dst = append(dst, "would "...)
		}
		dst = appendText(dst, action)
		if k.Errno != 0 {
			dst = append(dst, " errno="...)
			dst = strconv.AppendInt(dst, int64(k.Errno), 10)
			e := k.Errno
			if e < 0 {
				e = -e
			}
			if name := unix.ErrnoName(unix.Errno(e)); name != "" {
				dst = append(dst, ' ')
				dst = append(dst, name...)
			}
		}
		if opts.Color {
			dst = append(dst, ansiReset...)
		}
	}
	if k.Repeats != nil && k.Repeats.Count > 0 {
		dst = append(dst, " x"...)
		dst = strconv.AppendUint(dst, k.Repeats.Count, 10)
	}
	if k.PolicyName != "" {
		dst = append(dst, " ["...)
		dst = appendText(dst, k.PolicyName)
		dst = append(dst, ']')
	}
	return dst
}
