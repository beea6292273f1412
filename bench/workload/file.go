package workload

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// MakeFiles creates count files of size bytes in dir (untimed set-up) and
// returns their paths.
func MakeFiles(dir string, count, size int) ([]string, error) {
	if count < 1 || size < 0 {
		return nil, fmt.Errorf("files %d of %d bytes: need at least one file", count, size)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	data := make([]byte, size)
	for i := range data {
		data[i] = byte('a' + i%26)
	}
	paths := make([]string, count)
	for i := range paths {
		paths[i] = filepath.Join(dir, "f"+strconv.Itoa(i)+".txt")
		if err := os.WriteFile(paths[i], data, 0o644); err != nil {
			return nil, err
		}
	}
	return paths, nil
}

// FileIO opens, reads (up to 4 KiB) and closes the given files round-robin,
// n times in all, with plain system calls.
func FileIO(paths []string, n int) (Result, error) {
	if len(paths) == 0 {
		return Result{}, fmt.Errorf("no file to open")
	}
	buf := make([]byte, 4096)
	start := time.Now()
	for i := 0; i < n; i++ {
		p := paths[i%len(paths)]
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return Result{}, fmt.Errorf("open %s: %w", p, err)
		}
		if _, err := unix.Read(fd, buf); err != nil {
			unix.Close(fd)
			return Result{}, fmt.Errorf("read %s: %w", p, err)
		}
		unix.Close(fd)
	}
	return Result{Ops: int64(n), Seconds: since(start)}, nil
}
