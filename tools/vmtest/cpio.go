package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// cpioWriter writes an archive in the "newc" format the kernel unpacks as an
// initramfs (see the kernel's Documentation/driver-api/early-userspace/
// buffer-format.rst). Names are stored without a leading slash; parent
// directories are created on demand, each once.
type cpioWriter struct {
	w    *bufio.Writer
	off  int64
	ino  uint32
	dirs map[string]bool
	err  error
}

const (
	cpioMagic   = "070701"
	cpioTrailer = "TRAILER!!!"
	cpioHdrLen  = 110

	modeDir     = 0o040000
	modeFile    = 0o100000
	modeSymlink = 0o120000
	modeCharDev = 0o020000
)

func newCPIOWriter(w io.Writer) *cpioWriter {
	return &cpioWriter{w: bufio.NewWriterSize(w, 1<<20), dirs: map[string]bool{".": true}}
}

// cleanName turns an absolute or relative slash path into the archive's form.
func cleanName(name string) (string, error) {
	n := path.Clean("/" + name)
	if n == "/" {
		return "", fmt.Errorf("cpio: empty name %q", name)
	}
	return strings.TrimPrefix(n, "/"), nil
}

// Dir adds a directory and its missing parents.
func (c *cpioWriter) Dir(name string, perm fs.FileMode) error {
	n, err := cleanName(name)
	if err != nil {
		return err
	}
	return c.mkdirAll(n, perm)
}

func (c *cpioWriter) mkdirAll(n string, perm fs.FileMode) error {
	if c.dirs[n] {
		return nil
	}
	if err := c.mkdirAll(path.Dir(n), 0o755); err != nil {
		return err
	}
	c.dirs[n] = true
	return c.header(n, modeDir|unixPerm(perm), 0, 0, 0)
}

// File adds a regular file of size bytes read from r.
func (c *cpioWriter) File(name string, perm fs.FileMode, size int64, r io.Reader) error {
	n, err := cleanName(name)
	if err != nil {
		return err
	}
	if size < 0 || size > 0xffffffff {
		return fmt.Errorf("cpio: %s: size %d does not fit the newc format", name, size)
	}
	if err := c.mkdirAll(path.Dir(n), 0o755); err != nil {
		return err
	}
	if err := c.header(n, modeFile|unixPerm(perm), uint32(size), 0, 0); err != nil {
		return err
	}
	copied, err := io.CopyN(c.w, r, size)
	c.off += copied
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("file is shorter than %d bytes", size)
		}
		c.err = fmt.Errorf("cpio: %s: %w", name, err)
		return c.err
	}
	return c.pad()
}

// Bytes adds a regular file with the given contents.
func (c *cpioWriter) Bytes(name string, perm fs.FileMode, data []byte) error {
	return c.File(name, perm, int64(len(data)), bytes.NewReader(data))
}

// Symlink adds a symbolic link name pointing at target.
func (c *cpioWriter) Symlink(name, target string) error {
	n, err := cleanName(name)
	if err != nil {
		return err
	}
	if err := c.mkdirAll(path.Dir(n), 0o755); err != nil {
		return err
	}
	if err := c.header(n, modeSymlink|0o777, uint32(len(target)), 0, 0); err != nil {
		return err
	}
	if _, err := io.WriteString(c.w, target); err != nil {
		c.err = err
		return err
	}
	c.off += int64(len(target))
	return c.pad()
}

// CharDev adds a character device node.
func (c *cpioWriter) CharDev(name string, perm fs.FileMode, major, minor uint32) error {
	n, err := cleanName(name)
	if err != nil {
		return err
	}
	if err := c.mkdirAll(path.Dir(n), 0o755); err != nil {
		return err
	}
	return c.header(n, modeCharDev|unixPerm(perm), 0, major, minor)
}

// unixPerm converts permission bits, setuid, setgid and sticky included, to
// their st_mode form.
func unixPerm(m fs.FileMode) uint32 {
	p := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		p |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		p |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		p |= 0o1000
	}
	return p
}

// Close writes the trailer and flushes. It does not close the underlying
// writer.
func (c *cpioWriter) Close() error {
	if c.err != nil {
		return c.err
	}
	if err := c.header(cpioTrailer, 0, 0, 0, 0); err != nil {
		return err
	}
	return c.w.Flush()
}

func (c *cpioWriter) header(name string, mode, size, rmajor, rminor uint32) error {
	if c.err != nil {
		return c.err
	}
	if strings.ContainsRune(name, 0) {
		c.err = fmt.Errorf("cpio: name %q contains a NUL byte", name)
		return c.err
	}
	c.ino++
	ino := c.ino
	nlink := uint32(1)
	if mode&0o170000 == modeDir {
		nlink = 2
	}
	if name == cpioTrailer {
		ino = 0
	}
	// ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
	hdr := fmt.Sprintf("%s%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		cpioMagic, ino, mode, 0, 0, nlink, 0, size, 0, 0, rmajor, rminor, len(name)+1, 0)
	if _, err := io.WriteString(c.w, hdr+name+"\x00"); err != nil {
		c.err = err
		return err
	}
	c.off += int64(cpioHdrLen + len(name) + 1)
	return c.pad()
}

// pad aligns the archive to four bytes.
func (c *cpioWriter) pad() error {
	if c.err != nil {
		return c.err
	}
	n := (4 - c.off%4) % 4
	if n == 0 {
		return nil
	}
	if _, err := c.w.Write(make([]byte, n)); err != nil {
		c.err = err
		return err
	}
	c.off += n
	return nil
}
