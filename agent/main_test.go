package agent_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
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
