package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// machine is one qemu run.
type machine struct {
	Qemu    string
	Kernel  string
	Initrd  string
	Cmdline string
	Memory  int // MiB
	CPUs    int
	Timeout time.Duration
	// Token is the one the guest's exit marker carries.
	Token string
	// Stdout receives the test's output (ttyS1), marker excluded.
	Stdout io.Writer
	// Console, when set, receives the kernel console (ttyS0) as it comes.
	Console io.Writer
	// Grace is how long to wait for qemu to exit after the marker; after a
	// panic it is a tenth of that.
	Grace time.Duration
}

// bootError is a failure of the VM rather than of the test.
type bootError struct {
	msg     string
	console []string
	qemu    string
}

func (e *bootError) Error() string {
	var b strings.Builder
	b.WriteString(e.msg)
	if len(e.console) > 0 {
		b.WriteString("\n--- last kernel console lines ---\n")
		b.WriteString(strings.Join(e.console, "\n"))
	}
	if q := strings.TrimSpace(e.qemu); q != "" {
		b.WriteString("\n--- qemu ---\n" + q)
	}
	return b.String()
}

// panicText is what the kernel prints when it panics.
const panicText = "Kernel panic - not syncing"

// qemuArgs is the qemu command line: TCG (KVM hangs on our hosts), no
// default devices, the console on the first serial port and the test's
// output on the second, both handed to qemu as inherited pipes.
func (m *machine) qemuArgs() []string {
	return []string{
		"-accel", "tcg", "-cpu", "max",
		"-m", strconv.Itoa(m.Memory), "-smp", strconv.Itoa(m.CPUs),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-serial", "file:/dev/fd/3",
		"-serial", "file:/dev/fd/4",
		"-kernel", m.Kernel, "-initrd", m.Initrd,
		"-append", m.Cmdline,
	}
}

// Run boots the guest and returns the test's exit status. A guest that
// panics, runs past the timeout or stops without the exit marker returns a
// *bootError.
func (m *machine) Run(ctx context.Context) (int, error) {
	conR, conW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer conR.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		conW.Close()
		return 0, err
	}
	defer outR.Close()

	var qemuOut bytes.Buffer
	cmd := exec.Command(m.Qemu, m.qemuArgs()...)
	qemuLog := &limitedBuffer{b: &qemuOut, max: 16 << 10}
	cmd.Stdout, cmd.Stderr = qemuLog, qemuLog
	cmd.ExtraFiles = []*os.File{conW, outW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	conW.Close()
	outW.Close()
	if err != nil {
		hint := ""
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			hint = " (install it with scripts/setup-host.sh --vm)"
		}
		return 0, &bootError{msg: fmt.Sprintf("start %s: %v%s", m.Qemu, err, hint)}
	}
	kill := func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }

	con := &consoleWatch{tail: 40, w: m.Console, panicked: make(chan string, 1)}
	out := &outputWatch{token: m.Token, w: m.Stdout, status: make(chan int, 1)}
	var readers sync.WaitGroup
	readers.Add(2)
	go func() { defer readers.Done(); con.read(conR) }()
	go func() { defer readers.Done(); out.read(outR) }()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	timeout := time.NewTimer(m.Timeout)
	defer timeout.Stop()
	var grace <-chan time.Time
	var timedOut, interrupted bool
	var waitErr error
	panicked, status := con.panicked, out.status
loop:
	for {
		select {
		case waitErr = <-exited:
			break loop
		case <-timeout.C:
			timedOut = true
			kill()
		case <-ctx.Done():
			interrupted = true
			kill()
		case <-panicked:
			panicked = nil
			grace = time.After(m.Grace / 10)
		case <-status:
			status = nil
			grace = time.After(m.Grace)
		case <-grace:
			kill()
		}
	}
	// Only qemu (and its process group) writes to the pipes, so the readers
	// end now; a stray writer is cut off after a moment.
	kill()
	done := make(chan struct{})
	go func() { readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		conR.Close()
		outR.Close()
		<-done
	}

	if code, ok := out.result(); ok {
		return code, nil
	}
	be := &bootError{console: con.lines(), qemu: qemuOut.String()}
	switch {
	case con.panicLine() != "":
		be.msg = "guest kernel panicked: " + con.panicLine()
	case interrupted:
		be.msg = "interrupted: " + context.Cause(ctx).Error()
	case timedOut:
		be.msg = fmt.Sprintf("guest did not finish within %s (raise it with -timeout or go test -timeout)", m.Timeout)
	default:
		be.msg = "guest stopped without reporting the test's exit status"
		if waitErr != nil {
			be.msg += " (qemu: " + waitErr.Error() + ")"
		}
	}
	return 0, be
}

// consoleWatch reads the kernel console: it keeps the last lines, forwards
// them when asked to and reports the first panic line.
type consoleWatch struct {
	tail     int
	w        io.Writer
	panicked chan string

	mu    sync.Mutex
	last  []string
	panic string
}

func (c *consoleWatch) read(r io.Reader) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			c.line(strings.TrimRight(line, "\r\n"))
		}
		if err != nil {
			return
		}
	}
}

func (c *consoleWatch) line(l string) {
	if c.w != nil {
		fmt.Fprintln(c.w, l)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = append(c.last, l)
	if len(c.last) > c.tail {
		c.last = c.last[len(c.last)-c.tail:]
	}
	if c.panic == "" {
		if i := strings.Index(l, panicText); i >= 0 {
			c.panic = l[i:]
			c.panicked <- c.panic
		}
	}
}

func (c *consoleWatch) lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.last...)
}

func (c *consoleWatch) panicLine() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.panic
}

// outputWatch forwards the test's output and picks out the exit marker.
type outputWatch struct {
	token  string
	w      io.Writer
	status chan int

	mu   sync.Mutex
	code int
	seen bool
}

func (o *outputWatch) read(r io.Reader) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line != "" && !o.done() {
			text, code, ok := parseMarker(normalizeNewline(line), o.token)
			io.WriteString(o.w, text)
			if ok {
				o.mu.Lock()
				o.code, o.seen = code, true
				o.mu.Unlock()
				o.status <- code
			}
		}
		if err != nil {
			return
		}
	}
}

func (o *outputWatch) done() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.seen
}

func (o *outputWatch) result() (int, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.code, o.seen
}

// normalizeNewline turns a serial line ending "\r\n" into "\n".
func normalizeNewline(line string) string {
	if s, ok := strings.CutSuffix(line, "\r\n"); ok {
		return s + "\n"
	}
	return line
}

// parseMarker looks for the exit marker of token in one line of output. It
// returns the output that precedes the marker (all of line when there is
// none; the test's last line may lack a newline, so the marker can follow it
// on the same line) and the exit status.
func parseMarker(line, token string) (text string, code int, ok bool) {
	m := marker(token, "")
	i := strings.Index(line, m)
	if i < 0 {
		return line, 0, false
	}
	rest := strings.TrimRight(line[i+len(m):], "\r\n")
	code, err := strconv.Atoi(rest)
	if err != nil || code < 0 || code > 255 {
		return line, 0, false
	}
	return line[:i], code, true
}

// limitedBuffer keeps at most max bytes.
type limitedBuffer struct {
	mu  sync.Mutex
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
