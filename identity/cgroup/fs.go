package cgroup

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// ErrNoCgroup2 means no cgroup2 file system is mounted.
var ErrNoCgroup2 = errors.New("no cgroup2 file system mounted (is the host on cgroup v1 only?)")

// Mountpoint returns where the cgroup2 file system is mounted, read from
// /proc/self/mountinfo: /sys/fs/cgroup on unified hosts,
// /sys/fs/cgroup/unified on hybrid ones.
func Mountpoint() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("find cgroup2 mount: %w", err)
	}
	defer f.Close()
	return MountpointIn(f)
}

// MountpointIn returns, from a mount table in the format of
// /proc/self/mountinfo, the mount point of the first cgroup2 mount whose
// root is the root of the hierarchy, or the first cgroup2 mount when none is
// (a cgroup namespace shows its own root as "/" anyway).
func MountpointIn(r io.Reader) (string, error) {
	mounts, err := mountinfo.GetMountsFromReader(r, mountinfo.FSTypeFilter("cgroup2"))
	if err != nil {
		return "", fmt.Errorf("read mountinfo: %w", err)
	}
	for _, m := range mounts {
		if m.Root == "/" {
			return m.Mountpoint, nil
		}
	}
	if len(mounts) > 0 {
		return mounts[0].Mountpoint, nil
	}
	return "", ErrNoCgroup2
}

// ID returns the cgroup id of a cgroup directory: its inode number, which is
// what bpf_get_current_cgroup_id returns for processes in it.
func ID(dir string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return 0, fmt.Errorf("cgroup id of %s: %w", dir, err)
	}
	return st.Ino, nil
}

// ProcPath returns the cgroup v2 path of a process, the "0::" line of
// /proc/PID/cgroup.
func ProcPath(procRoot string, pid int) (string, error) {
	data, err := os.ReadFile(filepath.Join(procRoot, fmt.Sprint(pid), "cgroup"))
	if err != nil {
		return "", fmt.Errorf("cgroup of pid %d: %w", pid, err)
	}
	for _, line := range bytes.Split(data, []byte{'\n'}) {
		if p, ok := bytes.CutPrefix(line, []byte("0::")); ok {
			return string(p), nil
		}
	}
	return "", fmt.Errorf("cgroup of pid %d: no cgroup v2 line in /proc/%d/cgroup", pid, pid)
}

// Walk calls fn for root and every cgroup below it, with the path as
// /proc/PID/cgroup shows it ("/" for root itself) and the cgroup id.
// Cgroups that vanish during the walk are skipped; other errors stop it.
func Walk(root string, fn func(path string, id uint64)) error {
	var st unix.Stat_t
	if err := unix.Stat(root, &st); err != nil {
		return fmt.Errorf("walk cgroups: %w", err)
	}
	fn("/", st.Ino)
	return walkDir(root, "", fn)
}

func walkDir(dir, rel string, fn func(string, uint64)) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("walk cgroups: %w", err)
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			continue
		}
		p := rel + "/" + e.Name()
		fn(p, st.Ino)
		if err := walkDir(filepath.Join(dir, e.Name()), p, fn); err != nil {
			return err
		}
	}
	return nil
}

// fileidKernfs is the handle type of kernfs file handles (FILEID_KERNFS in
// include/linux/exportfs.h); for cgroup2 the handle is the cgroup id.
const fileidKernfs = 0xfe

// Opener resolves one cgroup id to its path without walking, with
// open_by_handle_at (which needs CAP_DAC_READ_SEARCH).
type Opener struct {
	root  string
	mount *os.File
}

// NewOpener opens the cgroup2 mount at root.
func NewOpener(root string) (*Opener, error) {
	f, err := os.Open(root)
	if err != nil {
		return nil, fmt.Errorf("open cgroup2 mount: %w", err)
	}
	return &Opener{root: filepath.Clean(root), mount: f}, nil
}

// Close releases the mount's descriptor.
func (o *Opener) Close() error { return o.mount.Close() }

// Path returns the path of the cgroup with this id, as /proc/PID/cgroup
// shows it. A cgroup that no longer exists gives an error matching
// fs.ErrNotExist.
func (o *Opener) Path(id uint64) (string, error) {
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], id)
	fd, err := unix.OpenByHandleAt(int(o.mount.Fd()), unix.NewFileHandle(fileidKernfs, b[:]), unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		if errors.Is(err, unix.ESTALE) || errors.Is(err, unix.ENOENT) {
			return "", fmt.Errorf("cgroup %d: %w", id, fs.ErrNotExist)
		}
		return "", fmt.Errorf("open cgroup %d by handle: %w", id, err)
	}
	defer unix.Close(fd)
	target, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return "", fmt.Errorf("path of cgroup %d: %w", id, err)
	}
	return relative(o.root, target)
}

// relative turns an absolute path below the mount point into a cgroup path.
func relative(root, abs string) (string, error) {
	if abs == root {
		return "/", nil
	}
	if rel, ok := strings.CutPrefix(abs, root+"/"); ok {
		return "/" + rel, nil
	}
	if root == "/" && strings.HasPrefix(abs, "/") {
		return abs, nil
	}
	return "", fmt.Errorf("cgroup path %s is outside the mount %s", abs, root)
}
