package detect_test

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/agent/agenttest"
)

// The test binary doubles as the helper program of agenttest.RunHelper,
// and of the operations below (VIGIL_DETECT_HELPER=op), which only the
// detection tests need.
func TestMain(m *testing.M) {
	if op := os.Getenv("VIGIL_DETECT_HELPER"); op != "" {
		os.Exit(detectHelper(op, os.Args[1:]))
	}
	os.Exit(agenttest.Main(m))
}

// detectHelper performs one operation, prints "errno=N" (0 on success)
// and exits 0; spawn prints "pid=N" of the program it ran first, and
// ptrace-traceme prints nothing.
func detectHelper(op string, args []string) int {
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	var err error
	switch op {
	case "spawn":
		// Run args as a child (with this environment, less the helper
		// variable) and wait for it.
		cmd := exec.Command(arg(0), args[1:]...)
		for _, kv := range os.Environ() {
			if len(kv) < 20 || kv[:20] != "VIGIL_DETECT_HELPER=" {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		if next := os.Getenv("VIGIL_DETECT_NEXT"); next != "" {
			cmd.Env = append(cmd.Env, "VIGIL_DETECT_HELPER="+next)
		}
		if err = cmd.Start(); err == nil {
			fmt.Printf("pid=%d\n", cmd.Process.Pid)
			cmd.Wait()
		}
	case "chmod":
		var mode uint64
		if mode, err = strconv.ParseUint(arg(1), 8, 32); err == nil {
			err = unix.Fchmodat(unix.AT_FDCWD, arg(0), uint32(mode), 0)
		}
	case "rename":
		err = unix.Renameat(unix.AT_FDCWD, arg(0), unix.AT_FDCWD, arg(1))
	case "link":
		err = unix.Linkat(unix.AT_FDCWD, arg(0), unix.AT_FDCWD, arg(1), 0)
	case "symlink":
		err = unix.Symlinkat(arg(0), unix.AT_FDCWD, arg(1))
	case "setns":
		// Enter the namespace file arg(0) as type arg(1) (0: any).
		var fd, typ int
		typ, _ = strconv.Atoi(arg(1))
		if fd, err = unix.Open(arg(0), unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
			err = unix.Setns(fd, typ)
			unix.Close(fd)
		}
	case "mount":
		// Mount a file system of type arg(1) on arg(0), in the mount
		// namespace the helper was started in (made private first, so
		// nothing propagates to the host).
		if err = unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err == nil {
			err = unix.Mount(arg(1), arg(0), arg(1), 0, "")
		}
	case "ptrace-traceme":
		// Once traced, any signal stops this process until its parent,
		// which only waits for exits, lets it go: the Go runtime's
		// preemption signal would hang both (run this with
		// GODEBUG=asyncpreemptoff=1). So nothing runs between the call
		// and the exit.
		unix.RawSyscall(unix.SYS_PTRACE, unix.PTRACE_TRACEME, 0, 0)
		unix.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
	case "userfaultfd":
		r, _, e := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC, 0, 0)
		if e != 0 {
			err = e
		} else {
			unix.Close(int(r))
		}
	default:
		fmt.Fprintf(os.Stderr, "unknown detection helper operation %q\n", op)
		return 2
	}
	fmt.Printf("errno=%d\n", agenttest.ErrnoOf(err))
	return 0
}
