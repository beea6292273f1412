package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Markers around a guest's report in its output.
const (
	GuestBegin = "<!-- vigil-bench guest report -->"
	GuestEnd   = "<!-- vigil-bench guest report end -->"
)

// guestEnv is bench/vmguest's GuestEnv.
const guestEnv = "VIGIL_BENCH_GUEST"

// DefaultGuestArgs size the run inside a VM: qemu emulates the CPU there
// (TCG), so every operation is many times slower than on the host and the
// workloads are smaller. Only the default configuration runs.
var DefaultGuestArgs = []string{"-only", "table", "-no-redis", "-configs", "default", "-rounds", "3",
	"-exec", "300", "-file", "10000", "-file-monitored", "3000", "-connect", "1000", "-bulk-bytes", "134217728"}

// vmTimeout bounds one VM run.
const vmTimeout = 40 * time.Minute

// vmRun is what one kernel's VM run contributed.
type vmRun struct {
	kernel  string
	text    string
	err     error
	seconds float64
}

// runVM boots kernel (a folder of scripts/vm-kernels.sh) with the agent,
// this harness and a guest test that runs `vigil-bench run -guest` there,
// and adds the guest's report to the host's. A failed VM run is reported in
// the document and returned.
func (h *Harness) runVM(ctx context.Context, kernel string) error {
	name := filepath.Base(kernel)
	h.progress("vm %s: building the guest test", name)
	guest := filepath.Join(h.dir, "vmguest.test")
	build := exec.CommandContext(ctx, "go", "test", "-c", "-tags", "benchvm", "-o", guest, "./bench/vmguest")
	build.Dir = h.opts.Repo
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return h.vmFailed(name, fmt.Errorf("building bench/vmguest: %w\n%s", err, out))
	}
	args := h.opts.GuestArgs
	if len(args) == 0 {
		args = DefaultGuestArgs
	}
	argv := append([]string{h.opts.Self, "run", "-guest", "-docs", "", "-vigil", h.opts.Vigil, "-repo", "/tmp"}, args...)
	js, err := json.Marshal(argv)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, h.opts.VMTool, "-kernel", kernel, "-mem", "3072", "-smp", "2",
		"-timeout", vmTimeout.String(), "-include", h.opts.Vigil+","+h.opts.Self,
		guest, "-test.run", "^TestBenchInVM$", "-test.v", "-test.timeout", (vmTimeout - 2*time.Minute).String())
	cmd.Env = append(os.Environ(), guestEnv+"="+string(js))
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	start := time.Now()
	h.progress("vm %s: booting (%s)", name, strings.Join(argv[1:], " "))
	if err := cmd.Start(); err != nil {
		return h.vmFailed(name, fmt.Errorf("%s: %w", h.opts.VMTool, err))
	}
	var report strings.Builder
	var tail, errTail []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(errPipe)
		for sc.Scan() {
			h.progress("vm %s: %s", name, sc.Text())
			errTail = appendTail(errTail, sc.Text())
		}
	}()
	in := false
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == GuestBegin:
			in = true
		case strings.TrimSpace(line) == GuestEnd:
			in = false
		case in:
			report.WriteString(line + "\n")
		default:
			h.progress("vm %s: %s", name, line)
			tail = appendTail(tail, line)
		}
	}
	<-done
	err = cmd.Wait()
	secs := time.Since(start).Seconds()
	if err != nil || report.Len() == 0 {
		if err == nil {
			err = fmt.Errorf("the guest printed no report")
		}
		return h.vmFailed(name, fmt.Errorf("%s: %w; last lines:\n%s", h.opts.VMTool, err, strings.Join(append(tail, errTail...), "\n")))
	}
	h.rep.vm = append(h.rep.vm, &vmRun{kernel: name, text: report.String(), seconds: secs})
	h.progress("vm %s: done in %.0f s", name, secs)
	return nil
}

func appendTail(tail []string, line string) []string {
	tail = append(tail, line)
	if len(tail) > 20 {
		tail = tail[1:]
	}
	return tail
}

func (h *Harness) vmFailed(name string, err error) error {
	h.rep.vm = append(h.rep.vm, &vmRun{kernel: name, err: err})
	return fmt.Errorf("vm %s: %w", name, err)
}

// GuestMarkdown is the part of a report a VM run contributes: the overhead
// table and the agent's side, one heading level down.
func (r *Report) GuestMarkdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("Kernel %s, %d rounds, command `%s`.\n\n", kernelRelease(), r.opts.Rounds, r.opts.Command)
	if len(r.values) > 0 {
		r.tableMarkdown(p)
		r.agentMarkdown(p)
	}
	r.idleMarkdown(p)
	var out strings.Builder
	for _, l := range strings.SplitAfter(b.String(), "\n") {
		if strings.HasPrefix(l, "### ") {
			l = "#" + l
		}
		out.WriteString(l)
	}
	return out.String()
}

func (r *Report) vmMarkdown(p printf) {
	for _, v := range r.vm {
		p("### Inside a VM on Debian's %s kernel\n\n", v.kernel)
		if v.err != nil {
			p("The VM run failed: `%v`.\n\n", strings.ReplaceAll(v.err.Error(), "\n", " ⏎ "))
			continue
		}
		p("The same workloads and agent, booted by tools/vmtest in qemu with software CPU emulation (TCG), where the kernel offers fentry, kprobe.multi and BPF LSM and the agent picks its hooks accordingly (`vigil probe` shows the choice). Emulation slows every operation by an order of magnitude or more, so only ratios are shown and the workloads are smaller; the run took %.0f s.\n\n", v.seconds)
		p("%s\n", v.text)
	}
}
