package agent

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"sync"
	"syscall"
)

// umaskMu serializes listenUnix's changes of the process umask.
var umaskMu sync.Mutex

// listenUnix listens on a unix socket at path whose file has mode perm (at
// most 0700) from the moment it exists: the umask is set around bind, so
// there is no window in which another user could connect, as there is
// when the socket is made first and chmod-ed after. The umask belongs to
// the whole process; while it is set, files other goroutines create get
// fewer permissions, never more.
func listenUnix(path string, perm fs.FileMode) (net.Listener, error) {
	if perm&^0o700 != 0 {
		return nil, fmt.Errorf("listen %s: mode %04o opens the socket to other users", path, perm)
	}
	umaskMu.Lock()
	old := syscall.Umask(int(0o777 &^ perm))
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	umaskMu.Unlock()
	if err != nil {
		return nil, err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		return nil, err
	}
	if got := fi.Mode().Perm(); got != perm {
		ln.Close()
		return nil, fmt.Errorf("listen %s: the socket was created %04o, not %04o", path, got, perm)
	}
	return ln, nil
}
