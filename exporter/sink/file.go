package sink

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"gopkg.in/natefinch/lumberjack.v2"
)

// FileOptions configure a rotating file.
type FileOptions struct {
	Path string
	// MaxSizeMB rotates the file before it grows past this size.
	MaxSizeMB int
	// MaxBackups is the number of rotated files kept (0 keeps all).
	MaxBackups int
	// RotationInterval also rotates the file this often (0: size only).
	RotationInterval time.Duration
	// Compress gzips rotated files.
	Compress bool
	// Perm is the mode of the file and its backups.
	Perm fs.FileMode
}

// File writes lines to a file rotated by size and time. Rotation happens
// between writes, and writes are whole lines, so a line is never split
// across files. When the file system is full, the lines that do not fit
// are counted lost and the partial line is cut off; writing resumes when
// space returns.
type File struct {
	mu    sync.Mutex // orders writes, cuts and rotations
	opts  FileOptions
	log   *lumberjack.Logger
	hooks Hooks
	errs  *errorLog
	ino   uint64
}

var _ Sink = (*File)(nil)

// NewFile opens (creating it if needed) the file at opts.Path with mode
// opts.Perm, and fails when it cannot be written.
func NewFile(opts FileOptions, hooks Hooks) (*File, error) {
	if opts.MaxSizeMB <= 0 {
		opts.MaxSizeMB = 100
	}
	if opts.Perm == 0 {
		opts.Perm = 0o600
	}
	f, err := os.OpenFile(opts.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, opts.Perm)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", opts.Path, err)
	}
	err = f.Chmod(opts.Perm) // umask and an existing file's mode do not win
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("chmod %s: %w", opts.Path, err)
	}
	s := &File{
		opts: opts,
		log: &lumberjack.Logger{
			Filename:   opts.Path,
			MaxSize:    opts.MaxSizeMB,
			MaxBackups: opts.MaxBackups,
			Compress:   opts.Compress,
		},
		hooks: hooks,
		errs:  newErrorLog(hooks.Log, "file"),
	}
	s.ino = inode(opts.Path)
	return s, nil
}

func inode(path string) uint64 {
	info, err := os.Stat(path)
	if err != nil {
		return 0
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

// Name implements Sink.
func (s *File) Name() string { return "file" }

// Write implements Sink.
func (s *File) Write(_ context.Context, lines []byte, count int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := time.Now()
	n, err := s.log.Write(lines)
	s.hooks.latency(time.Since(start))
	if err == nil {
		s.hooks.delivered(count)
		s.checkRotated()
		s.errs.recovered()
		return
	}
	done, keep := completeLines(lines, n)
	if n > keep {
		// Cut the partial line so the next write starts on a line of its
		// own, and make the logger reopen the file in append mode.
		cerr := s.cutPartial(n - keep)
		if cerr != nil {
			err = fmt.Errorf("%w (cutting the partial line failed: %v)", err, cerr)
		}
	}
	s.hooks.delivered(done)
	s.hooks.lost(ReasonSinkError, count-done)
	s.errs.error(err, "file write failed, lines lost", count-done)
}

func (s *File) cutPartial(extra int) error {
	info, err := os.Stat(s.opts.Path)
	if err != nil {
		return err
	}
	size := info.Size() - int64(extra)
	if size < 0 {
		size = 0
	}
	err = os.Truncate(s.opts.Path, size)
	s.log.Close()
	return err
}

// checkRotated gives a file created by a rotation the configured mode,
// which the process umask may have narrowed. It also waits for the next
// millisecond: backups are named after the time of rotation to the
// millisecond, and a second rotation within the same one would rename the
// new file over the previous backup.
func (s *File) checkRotated() {
	if ino := inode(s.opts.Path); ino != s.ino {
		s.ino = ino
		if err := os.Chmod(s.opts.Path, s.opts.Perm); err != nil {
			s.errs.error(err, "chmod of rotated file failed", 0)
		}
		now := time.Now()
		time.Sleep(now.Truncate(time.Millisecond).Add(time.Millisecond).Sub(now))
	}
}

// Run implements Sink: it rotates the file every RotationInterval.
func (s *File) Run(ctx context.Context) error {
	if s.opts.RotationInterval <= 0 {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(s.opts.RotationInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.mu.Lock()
			if err := s.log.Rotate(); err != nil {
				s.errs.error(err, "time-based rotation failed", 0)
			} else {
				s.checkRotated()
			}
			s.mu.Unlock()
		}
	}
}

// Close implements Sink.
func (s *File) Close(context.Context) error {
	return s.log.Close()
}

// Backups lists the rotated files of path, oldest first, for tests and the
// status command.
func Backups(path string) ([]string, error) {
	ext := filepath.Ext(path)
	prefix := path[:len(path)-len(ext)] + "-"
	matches, err := filepath.Glob(prefix + "*")
	if err != nil {
		return nil, err
	}
	return matches, nil
}
