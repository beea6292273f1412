package encode

import (
	"strconv"
	"strings"

	"github.com/vigilsec/vigil/event"
)

// TextOptions change the human one-line format.
type TextOptions struct {
	// Color adds ANSI colour: red for enforcement, drops and alerts.
	Color bool
}

const (
	ansiReset  = "\x1b[0m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiBlue   = "\x1b[34m"
	ansiBold   = "\x1b[1m"
	ansiDim    = "\x1b[2m"
)

// maxTextArgs bounds how much of a command line the one-line format shows.
const maxTextArgs = 120

// AppendText appends a compact human summary of ev without a newline:
//
//	07:18:21.123 default/web-7c9 /usr/bin/curl[4242] exec https://example.com
//	07:18:22.001 host /usr/bin/cat[4250] security_file_open /etc/shadow O_RDONLY SIGKILL
//
// time (UTC), pod or "host", process, what happened, then the verdict or
// action when there is one. Control characters in names are shown escaped.
func AppendText(dst []byte, ev *event.Event, opts TextOptions) []byte {
	t := ev.Time.UTC()
	dst = t.AppendFormat(dst, "15:04:05.000")
	dst = append(dst, ' ')
	proc := ev.Process
	if proc == nil && ev.Alert != nil && ev.Alert.Event != nil {
		proc = ev.Alert.Event.Process
	}
	switch {
	case proc != nil && proc.Pod != nil:
		dst = appendText(dst, proc.Pod.Namespace)
		dst = append(dst, '/')
		dst = appendText(dst, proc.Pod.Name)
	case proc != nil:
		dst = append(dst, "host"...)
	default:
		dst = append(dst, '-')
	}
	if proc != nil {
		dst = append(dst, ' ')
		dst = appendText(dst, proc.Binary)
		dst = append(dst, '[')
		dst = strconv.AppendUint(dst, uint64(proc.PID), 10)
		dst = append(dst, ']')
	}
	dst = append(dst, ' ')
	return appendWhat(dst, ev, proc, opts)
}

func appendWhat(dst []byte, ev *event.Event, proc *event.Process, opts TextOptions) []byte {
	color := func(c string) {
		if opts.Color {
			dst = append(dst, c...)
		}
	}
	reset := func() {
		if opts.Color {
			dst = append(dst, ansiReset...)
		}
	}
	switch ev.Type {
	case event.TypeProcessExec:
		color(ansiGreen)
		dst = append(dst, "exec"...)
		reset()
		if proc != nil && proc.Arguments != "" {
			dst = append(dst, ' ')
			args := proc.Arguments
			if len(args) > maxTextArgs {
				args = args[:maxTextArgs]
				dst = appendText(dst, args)
				dst = append(dst, "..."...)
			} else {
				dst = appendText(dst, args)
			}
		}
	case event.TypeProcessExit:
		color(ansiDim)
		dst = append(dst, "exit"...)
		if x := ev.Exit; x != nil {
			if x.Signal != 0 {
				dst = append(dst, ' ')
				dst = appendSignal(dst, x.Signal)
			} else {
				dst = append(dst, " status="...)
				dst = strconv.AppendUint(dst, uint64(x.Status), 10)
			}
		}
		reset()
	case event.TypeProcessKprobe, event.TypeProcessTracepoint, event.TypeProcessLSM, event.TypeProcessUprobe, event.TypeProcessUsdt:
		dst = appendKprobeText(dst, ev, opts)
	case event.TypeFlow:
		dst = appendFlowText(dst, ev.Flow, opts)
	case event.TypeAlert:
		a := ev.Alert
		if a == nil {
			a = &event.Alert{}
		}
		color(ansiRed + ansiBold)
		dst = append(dst, "ALERT"...)
		if a.Rule.Severity != "" {
			dst = append(dst, ' ')
			dst = appendText(dst, strings.ToUpper(a.Rule.Severity))
		}
		reset()
		dst = append(dst, ' ')
		name := a.Rule.Name
		if name == "" {
			name = a.Rule.ID
		}
		dst = appendText(dst, name)
		if a.Description != "" {
			dst = append(dst, ": "...)
			dst = appendText(dst, a.Description)
		}
	case event.TypeLostEvents:
		color(ansiYellow)
		var l event.Lost
		if ev.Lost != nil {
			l = *ev.Lost
		}
		dst = append(dst, "lost "...)
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
		color(ansiYellow)
		dst = append(dst, "rate limit dropped "...)
		var n uint64
		if ev.RateLimit != nil {
			n = ev.RateLimit.NumberOfDroppedProcessEvents
		}
		dst = strconv.AppendUint(dst, n, 10)
		dst = append(dst, " events"...)
		reset()
	default:
		dst = append(dst, ev.Type.String()...)
	}
	return dst
}

func appendKprobeText(dst []byte, ev *event.Event, opts TextOptions) []byte {
	k := ev.Kprobe
	if k == nil {
		return append(dst, ev.Type.String()...)
	}
	if opts.Color {
		dst = append(dst, ansiBlue...)
	}
	if ev.Type == event.TypeProcessLSM {
		dst = append(dst, "lsm:"...)
	}
	if ev.Type == event.TypeProcessUsdt {
		dst = append(dst, "usdt:"...)
		dst = appendText(dst, k.UprobePath)
		dst = append(dst, ':')
		dst = appendText(dst, k.UsdtProvider)
		dst = append(dst, ':')
	}
	if ev.Type == event.TypeProcessUprobe {
		dst = append(dst, "uprobe:"...)
		dst = appendText(dst, k.UprobePath)
		dst = append(dst, ':')
	}
	dst = appendText(dst, k.FunctionName)
	if opts.Color {
		dst = append(dst, ansiReset...)
	}
	for i := range k.Args {
		dst = append(dst, ' ')
		dst = appendArgText(dst, &k.Args[i])
	}
	if k.Return != nil {
		dst = append(dst, " = "...)
		dst = appendArgText(dst, k.Return)
	}
	action := strings.TrimPrefix(k.Action, "KPROBE_ACTION_")
	if action == "" || action == "POST" {
		return dst
	}
	dst = append(dst, ' ')
	if opts.Color {
		dst = append(dst, ansiRed+ansiBold...)
	}
	if k.Monitor {
		dst = append(dst, "would "...)
	}
	dst = appendText(dst, action)
	if k.Errno != 0 {
		dst = append(dst, " errno="...)
		dst = strconv.AppendInt(dst, int64(k.Errno), 10)
	}
	if opts.Color {
		dst = append(dst, ansiReset...)
	}
	return dst
}

func appendArgText(dst []byte, a *event.Arg) []byte {
	switch a.Kind {
	case event.ArgInt, event.ArgCapability:
		return strconv.AppendInt(dst, a.Int, 10)
	case event.ArgUint, event.ArgSize:
		return strconv.AppendUint(dst, a.Uint, 10)
	case event.ArgString, event.ArgPath, event.ArgBinprm:
		return appendText(dst, a.Str)
	case event.ArgFile:
		dst = appendText(dst, a.Str)
		dst = append(dst, ' ')
		return appendOpenFlags(dst, a.Flags)
	case event.ArgSock, event.ArgSkb, event.ArgSockaddr:
		if a.Sock == nil {
			return append(dst, '?')
		}
		if a.Sock.Saddr.IsValid() {
			dst = a.Sock.Saddr.AppendTo(dst)
			dst = append(dst, ':')
			dst = strconv.AppendUint(dst, uint64(a.Sock.Sport), 10)
			dst = append(dst, "->"...)
		}
		dst = a.Sock.Daddr.AppendTo(dst)
		dst = append(dst, ':')
		return strconv.AppendUint(dst, uint64(a.Sock.Dport), 10)
	case event.ArgBytes:
		dst = strconv.AppendInt(dst, int64(len(a.Bytes)), 10)
		return append(dst, " bytes"...)
	}
	return append(dst, a.Kind.Key()...)
}

func appendFlowText(dst []byte, f *event.Flow, opts TextOptions) []byte {
	if f == nil {
		return append(dst, "flow"...)
	}
	if l4 := l4Name(f.Protocol); l4 != "" {
		dst = append(dst, l4...)
	} else {
		dst = append(dst, "IP"...)
	}
	dst = append(dst, ' ')
	dst = f.Source.AppendTo(dst)
	dst = append(dst, ':')
	dst = strconv.AppendUint(dst, uint64(f.SourcePort), 10)
	dst = append(dst, " -> "...)
	dst = f.Destination.AppendTo(dst)
	dst = append(dst, ':')
	dst = strconv.AppendUint(dst, uint64(f.DestinationPort), 10)
	for _, n := range tcpFlagNames {
		if f.Protocol == event.ProtoTCP && f.TCPFlags&n.flag != 0 {
			dst = append(dst, ' ')
			dst = append(dst, n.name...)
		}
	}
	if f.Count > 1 {
		dst = append(dst, " x"...)
		dst = strconv.AppendUint(dst, f.Count, 10)
	}
	dst = append(dst, ' ')
	if opts.Color {
		switch f.Verdict {
		case event.VerdictDropped:
			dst = append(dst, ansiRed+ansiBold...)
		case event.VerdictAudit:
			dst = append(dst, ansiYellow...)
		default:
			dst = append(dst, ansiGreen...)
		}
	}
	dst = append(dst, f.Verdict.String()...)
	if opts.Color {
		dst = append(dst, ansiReset...)
	}
	return dst
}

// appendText appends s for a terminal: control characters and invalid
// UTF-8 are shown escaped so an event cannot move the cursor or recolour
// the screen.
func appendText(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c >= 0x80 {
			q := strconv.AppendQuote(nil, s)
			return append(dst, q[1:len(q)-1]...)
		}
	}
	return append(dst, s...)
}
