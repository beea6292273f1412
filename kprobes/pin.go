package kprobes

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// DefaultPinDir is where programs that outlive the agent are pinned.
const DefaultPinDir = "/sys/fs/bpf/vigil"

// OnBPFFS reports whether path (which must exist) is on a BPF file system.
func OnBPFFS(path string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false, fmt.Errorf("statfs %s: %w", path, err)
	}
	return uint32(st.Type) == unix.BPF_FS_MAGIC, nil
}

// EnsurePinDir makes dir a directory on a BPF file system: when its nearest
// existing parent is not on one, a bpffs is mounted on the parent dir is
// created in (for the default, /sys/fs/bpf), or on dir itself when that
// parent is elsewhere. It reports what it mounted ("" when nothing).
func EnsurePinDir(dir string) (mounted string, err error) {
	if !filepath.IsAbs(dir) {
		return "", fmt.Errorf("%q is not an absolute path", dir)
	}
	dir = filepath.Clean(dir)
	existing := dir
	for {
		if _, err := os.Stat(existing); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		existing = filepath.Dir(existing)
	}
	ok, err := OnBPFFS(existing)
	if err != nil {
		return "", err
	}
	if !ok {
		target := dir
		if filepath.Dir(dir) == "/sys/fs/bpf" || dir == "/sys/fs/bpf" {
			target = "/sys/fs/bpf"
		}
		if err := os.MkdirAll(target, 0o700); err != nil {
			return "", err
		}
		if err := unix.Mount("bpf", target, "bpf", 0, "mode=0700"); err != nil {
			return "", fmt.Errorf("mount a BPF file system on %s: %w", target, err)
		}
		mounted = target
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return mounted, err
	}
	if ok, err := OnBPFFS(dir); err != nil || !ok {
		return mounted, fmt.Errorf("%s is not on a BPF file system (%v)", dir, err)
	}
	return mounted, nil
}

// PinLink pins l at path, creating the directories on the way.
func PinLink(l link.Link, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := l.Pin(path); err != nil {
		return fmt.Errorf("pin link at %s: %w (this kernel may not have BPF links for this kind of hook)", path, err)
	}
	return nil
}

// PinMap pins m at path, creating the directories on the way.
func PinMap(m *ebpf.Map, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := m.Pin(path); err != nil {
		return fmt.Errorf("pin map at %s: %w", path, err)
	}
	return nil
}

// CountPins returns the number of pinned objects (files) under dir; a
// missing dir has none.
func CountPins(dir string) (int, error) {
	n := 0
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return filepath.SkipDir
			}
			return err
		}
		if !d.IsDir() {
			n++
		}
		return nil
	})
	return n, err
}

// Attached is a link and the program it attaches.
type Attached struct {
	Link    link.ID
	Program ebpf.ProgramID
}

// PinnedLinks returns the links pinned under dir and their programs (maps
// pinned there are left out).
func PinnedLinks(dir string) ([]Attached, error) {
	var out []Attached
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return filepath.SkipDir
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		l, err := link.LoadPinnedLink(path, nil)
		if err != nil {
			return nil // a map
		}
		defer l.Close()
		info, err := l.Info()
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, Attached{Link: info.ID, Program: info.Program})
		return nil
	})
	return out, err
}

// WaitDetached waits up to d until none of the links and programs exists
// any more. The kernel releases a link some time after its last pin is
// removed (after an RCU grace period, from a work queue), and a link's id
// goes before its program is detached; a program's id goes once it is
// detached and released. So a program can still run for a moment after
// its pins are gone, and not after this returns.
func WaitDetached(objs []Attached, d time.Duration) error {
	deadline := time.Now().Add(d)
	exists := func(o Attached) bool {
		if l, err := link.NewFromID(o.Link); err == nil {
			l.Close()
			return true
		}
		if p, err := ebpf.NewProgramFromID(o.Program); err == nil {
			p.Close()
			return true
		}
		return false
	}
	for _, o := range objs {
		for exists(o) {
			if time.Now().After(deadline) {
				return fmt.Errorf("link %d (program %d) still attached after %v", o.Link, o.Program, d)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}
