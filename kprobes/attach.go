package kprobes

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// AttachBTF attaches a program loaded for a BTF attach point (fentry,
// fexit, fmod_ret or an LSM hook; the program spec's AttachTo and
// AttachType say which).
func AttachBTF(p *ebpf.Program, at ebpf.AttachType, target string) (link.Link, error) {
	var l link.Link
	var err error
	if at == ebpf.AttachLSMMac {
		l, err = link.AttachLSM(link.LSMOptions{Program: p})
	} else {
		l, err = link.AttachTracing(link.TracingOptions{Program: p})
	}
	if err != nil {
		return nil, fmt.Errorf("attach %s: %w", target, err)
	}
	return l, nil
}

// AttachKprobe attaches p to the entry (or, with ret, the return) of the
// kernel function symbol.
func AttachKprobe(symbol string, p *ebpf.Program, ret bool) (link.Link, error) {
	var l link.Link
	var err error
	if ret {
		l, err = link.Kretprobe(symbol, p, nil)
	} else {
		l, err = link.Kprobe(symbol, p, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("attach kprobe %s: %w", symbol, err)
	}
	return l, nil
}

// AttachKprobeMulti attaches p to every symbol at once, each with its
// cookie.
func AttachKprobeMulti(p *ebpf.Program, symbols []string, cookies []uint64) (link.Link, error) {
	l, err := link.KprobeMulti(p, link.KprobeMultiOptions{Symbols: symbols, Cookies: cookies})
	if err != nil {
		return nil, fmt.Errorf("attach kprobe.multi to %s: %w", strings.Join(symbols, ", "), err)
	}
	return l, nil
}

// AttachTracepoint attaches p to group/event. A tracepoint the kernel does
// not have is an error matching ErrCannotAttach.
func AttachTracepoint(group, event string, p *ebpf.Program) (link.Link, error) {
	l, err := link.Tracepoint(group, event, p, nil)
	if errors.Is(err, os.ErrNotExist) {
		if group == "syscalls" {
			return nil, cannot("this kernel has no tracepoint %s/%s: the syscall is not built into it (for example init_module without module support)", group, event)
		}
		return nil, cannot("this kernel has no tracepoint %s/%s", group, event)
	}
	if err != nil {
		return nil, fmt.Errorf("attach tracepoint %s/%s: %w", group, event, err)
	}
	return l, nil
}
