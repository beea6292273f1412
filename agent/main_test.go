package agent_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/networkpolicy/datapath/testpods"
)

// The test binary doubles as a small helper program, so that tests can make
// a process (not the agent, which policies never act on) perform one system
// call and report the errno it saw:
//
//	VIGIL_TEST_HELPER=open PATH | mkdir PATH | finit_module PATH | unshare-user
//
// It prints "errno=N" (0 on success) and exits 0.
func TestMain(m *testing.M) {
	testpods.RunHelperIfRequested()
	if op := os.Getenv("VIGIL_TEST_HELPER"); op != "" {
		os.Exit(helperMain(op, os.Args[1:]))
	}
	os.Exit(m.Run())
}

func helperMain(op string, args []string) int {
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	var err error
	switch op {
	case "open":
		var f *os.File
		f, err = os.Open(arg(0))
		if err == nil {
			buf := make([]byte, 16)
			_, err = f.Read(buf)
			if errors.Is(err, os.ErrClosed) || err != nil && err.Error() == "EOF" {
				err = nil
			}
			f.Close()
		}
	case "mkdir":
		err = os.Mkdir(arg(0), 0o755)
	case "finit_module":
		var f *os.File
		f, err = os.Open(arg(0))
		if err == nil {
			params, _ := syscall.BytePtrFromString("")
			_, _, e := syscall.Syscall(unix.SYS_FINIT_MODULE, f.Fd(), uintptr(unsafe.Pointer(params)), 0)
			if e != 0 {
				err = e
			}
		}
	case "unshare-user":
		err = syscall.Unshare(syscall.CLONE_NEWUSER)
	case "tcp-serve-once":
		// Accept one connection on arg(0) (an address), read what comes,
		// answer "ok" and close.
		var ln net.Listener
		ln, err = net.Listen("tcp", arg(0))
		if err == nil {
			var c net.Conn
			c, err = ln.Accept()
			if err == nil {
				io.Copy(io.Discard, io.LimitReader(c, 5))
				c.Write([]byte("ok"))
				c.Close()
			}
			ln.Close()
		}
	case "tcp-send":
		var c net.Conn
		c, err = net.Dial("tcp", arg(0))
		if err == nil {
			c.Write([]byte("hello"))
			io.ReadAll(c)
			c.Close()
		}
	case "udp-send":
		var c net.Conn
		c, err = net.Dial("udp", arg(0))
		if err == nil {
			_, err = c.Write([]byte("ping"))
			c.Close()
		}
	case "noop":
	case "open-write":
		// Open arg(0) with arg(1) = trunc|append|create.
		flags := os.O_WRONLY | os.O_CREATE
		switch arg(1) {
		case "trunc":
			flags |= os.O_TRUNC
		case "append":
			flags = os.O_WRONLY | os.O_APPEND
		}
		var f *os.File
		if f, err = os.OpenFile(arg(0), flags, 0o644); err == nil {
			f.Close()
		}
	case "unlink":
		err = unix.Unlinkat(unix.AT_FDCWD, arg(0), 0)
	case "packet-socket", "inet-socket":
		family, typ := unix.AF_PACKET, unix.SOCK_RAW
		if op == "inet-socket" {
			family, typ = unix.AF_INET, unix.SOCK_DGRAM
		}
		var fd int
		if fd, err = unix.Socket(family, typ, 0); err == nil {
			unix.Close(fd)
		}
	case "dup-socket", "dup-pipe":
		// Duplicate a TCP connection to arg(0) (or a pipe) onto stdout.
		var fd int
		if op == "dup-socket" {
			var c net.Conn
			if c, err = net.Dial("tcp", arg(0)); err == nil {
				var f *os.File
				f, err = c.(*net.TCPConn).File()
				if err == nil {
					fd = int(f.Fd())
				}
			}
		} else {
			var p [2]int
			if err = unix.Pipe(p[:]); err == nil {
				fd = p[1]
			}
		}
		if err == nil {
			err = unix.Dup2(fd, 1)
		}
	case "ptrace-attach", "ptrace-peek":
		var pid int
		fmt.Sscan(arg(0), &pid)
		if op == "ptrace-attach" {
			if err = unix.PtraceAttach(pid); err == nil {
				var ws unix.WaitStatus
				unix.Wait4(pid, &ws, unix.WALL, nil)
				err = unix.PtraceDetach(pid)
			}
		} else {
			_, err = unix.PtracePeekData(pid, 0, make([]byte, 8))
		}
	case "memfd-exec":
		// Copy this program into an anonymous memory file and run it
		// from there as the noop helper.
		var fd int
		if fd, err = unix.MemfdCreate("payload", 0); err == nil {
			var self []byte
			if self, err = os.ReadFile("/proc/self/exe"); err == nil {
				if _, err = unix.Write(fd, self); err == nil {
					env := []string{"VIGIL_TEST_HELPER=noop"}
					for _, kv := range os.Environ() {
						if !strings.HasPrefix(kv, "VIGIL_TEST_HELPER=") {
							env = append(env, kv)
						}
					}
					err = unix.Exec(fmt.Sprintf("/proc/self/fd/%d", fd), []string{"payload"}, env)
				}
			}
		}
	default:
		fmt.Fprintf(os.Stderr, "unknown helper operation %q\n", op)
		return 2
	}
	fmt.Printf("errno=%d\n", errnoOf(err))
	return 0
}

func errnoOf(err error) int {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return int(e)
	}
	return -1
}
