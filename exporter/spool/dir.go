package spool

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"github.com/sirupsen/logrus"
)

// dirPerm is the mode of a spool directory: the batches it holds are
// events, readable by the agent alone.
const dirPerm fs.FileMode = 0o700

// prepareDir creates dir 0700, or checks an existing one: it must be a
// directory of the agent's user, and is made 0700 if group or others had
// any access (which is logged). A directory of another user is refused: the
// agent would write events where someone else controls what happens to
// them.
func prepareDir(dir string, log logrus.FieldLogger) error {
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("spool: %s is not a directory", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("spool: %s belongs to uid %d, not to the agent's uid %d: give the agent a directory of its own, or chown it", dir, st.Uid, os.Geteuid())
	}
	if perm := fi.Mode().Perm(); perm&^dirPerm != 0 {
		// Through the open directory, so that what is changed is what was
		// checked.
		if err := f.Chmod(dirPerm); err != nil {
			return fmt.Errorf("spool: %s is mode %04o, open to other users, and cannot be made %04o: %w", dir, perm, dirPerm, err)
		}
		if log != nil {
			log.WithFields(logrus.Fields{"dir": dir, "was": fmt.Sprintf("%04o", perm), "now": fmt.Sprintf("%04o", dirPerm)}).
				Warn("webhook spool directory was open to other users; its mode is now 0700")
		}
	}
	return nil
}
