package main

import (
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// image describes the initramfs for one test run.
type image struct {
	// Busybox is the host's static busybox.
	Busybox string
	// Binary is the static test binary; it is stored as /vmtest/<name>.
	Binary string
	// WorkDir is the folder the test runs in. The guest creates it at the
	// same absolute path and chdirs to it; its testdata/ is packed.
	WorkDir string
	// Include lists more host files or folders to pack at the same path.
	Include []string
	// Modules are decompressed kernel module files, in load order.
	Modules []string
	// Runtime, when set, is the container runtime (containerd, runc, CNI
	// plugins and their shared libraries) to pack; the init then also
	// makes / a mount runc can pivot_root away from (see initScript).
	Runtime []guestFile
	// Env is the test's whole environment (KEY=value).
	Env []string
	// Args are the test binary's arguments.
	Args []string
	// Token makes the exit marker unique to this run.
	Token string
	// TestBudget, when set, is how long the test may run counted from the
	// guest kernel's start: the init gives the test binary what is left
	// of it after booting as its -test.timeout (at most TestTimeout), so
	// that a test that hangs panics with the list of running tests before
	// go test kills the VM, however long the boot took.
	TestBudget, TestTimeout time.Duration
}

// guestBinaryDir holds the test binary in the guest.
const guestBinaryDir = "/vmtest"

// markerPrefix starts the line the guest init writes after the test exits:
// "vigil-vmtest: <token> exit=<status>".
const markerPrefix = "vigil-vmtest: "

func marker(token string, status string) string {
	return markerPrefix + token + " exit=" + status
}

// checkStatic fails when the ELF file at p needs a dynamic loader, which the
// guest does not have.
func checkStatic(p, what, hint string) error {
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("%s %s is dynamically linked; the guest has no shared libraries (%s)", what, p, hint)
		}
	}
	return nil
}

// write writes the initramfs as a newc cpio archive.
func (im *image) write(w io.Writer) error {
	c := newCPIOWriter(w)
	for _, d := range []string{"bin", "dev", "proc", "sys", "tmp", "run", "root", "etc", "lib/modules/vmtest", guestBinaryDir} {
		perm := fs.FileMode(0o755)
		if d == "tmp" {
			perm = 0o777 | fs.ModeSticky
		}
		if err := c.Dir(d, perm); err != nil {
			return err
		}
	}
	if err := c.CharDev("dev/console", 0o600, 5, 1); err != nil {
		return err
	}
	if err := c.CharDev("dev/null", 0o666, 1, 3); err != nil {
		return err
	}
	if err := addHostFile(c, im.Busybox, "bin/busybox"); err != nil {
		return err
	}
	if err := c.Symlink("bin/sh", "busybox"); err != nil {
		return err
	}
	if err := c.Bytes("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")); err != nil {
		return err
	}
	if err := c.Bytes("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n")); err != nil {
		return err
	}
	if err := addHostFile(c, im.Binary, im.guestBinary()); err != nil {
		return err
	}
	if err := c.Dir(im.WorkDir, 0o755); err != nil {
		return err
	}
	includes := append([]string{filepath.Join(im.WorkDir, "testdata")}, im.Include...)
	for i, p := range includes {
		if _, err := os.Lstat(p); i == 0 && os.IsNotExist(err) {
			continue // no testdata
		}
		if err := addHostTree(c, p); err != nil {
			return err
		}
	}
	for _, m := range im.guestModules() {
		if err := addHostFile(c, m[0], m[1]); err != nil {
			return err
		}
	}
	if len(im.Runtime) > 0 {
		for _, f := range im.Runtime {
			if err := addHostFile(c, f.Src, f.Dst); err != nil {
				return err
			}
		}
		// containerd copies these into every pod sandbox.
		if err := c.Bytes("etc/hosts", 0o644, []byte("127.0.0.1\tlocalhost\n::1\tlocalhost\n")); err != nil {
			return err
		}
		if err := c.Bytes("etc/resolv.conf", 0o644, nil); err != nil {
			return err
		}
	}
	if err := c.Bytes("init", 0o755, []byte(im.initScript())); err != nil {
		return err
	}
	return c.Close()
}

func (im *image) guestBinary() string {
	return guestBinaryDir + "/" + filepath.Base(im.Binary)
}

// guestModules pairs each module file with its place in the guest; the
// numeric prefix keeps the load order visible.
func (im *image) guestModules() [][2]string {
	var out [][2]string
	for i, m := range im.Modules {
		out = append(out, [2]string{m, fmt.Sprintf("/lib/modules/vmtest/%02d-%s", i, filepath.Base(m))})
	}
	return out
}

// addHostFile packs one regular host file at name, keeping its permissions.
func addHostFile(c *cpioWriter, src, name string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", src)
	}
	return c.File(name, st.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky), st.Size(), f)
}

// addHostTree packs a host file or folder (recursively) at the same absolute
// path. Symbolic links are kept as links; sockets, devices and pipes are left
// out.
func addHostTree(c *cpioWriter, root string) error {
	root, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("pack %s: %w", root, err)
		}
		switch {
		case d.IsDir():
			info, err := d.Info()
			if err != nil {
				return err
			}
			return c.Dir(p, info.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return c.Symlink(p, target)
		case d.Type().IsRegular():
			return addHostFile(c, p, p)
		}
		return nil
	})
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// initScript is the guest's /init: mount what BPF and the tests need, load
// the modules, run the test with its output on ttyS1, report its exit status
// there and power off.
func (im *image) initScript() string {
	var b strings.Builder
	b.WriteString("#!/bin/busybox sh\n")
	if len(im.Runtime) > 0 {
		// The initramfs is the rootfs, which has no parent mount, so
		// pivot_root (runc's way into a container) fails from it with
		// EINVAL. A bind mount of it moved over / has one: the init
		// starts again chrooted into that.
		b.WriteString(`if [ -z "$vmtest_moved" ]; then
	/bin/busybox mkdir -p /.vmtest-root && /bin/busybox mount --bind / /.vmtest-root && cd /.vmtest-root &&
		/bin/busybox mount --move . / && export vmtest_moved=1 && exec /bin/busybox chroot . /init
	vmtest_moved=failed
fi
`)
	}
	b.WriteString(`/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs devtmpfs /dev
out=/dev/ttyS1
stty -F $out raw -echo
exec 3>$out
note() { echo "vmtest-init: $*" >&3; }
mnt() { mkdir -p "$3" && mount -t "$1" "$2" "$3" || note "cannot mount $1 at $3"; }
mnt sysfs sysfs /sys
mnt securityfs securityfs /sys/kernel/security
mnt bpf bpf /sys/fs/bpf
mnt tracefs tracefs /sys/kernel/tracing
mnt debugfs debugfs /sys/kernel/debug
mnt cgroup2 cgroup2 /sys/fs/cgroup
# /tmp becomes a tmpfs that keeps what the initramfs put there (the
# package's folder when it lives under /tmp).
mkdir -p /mnt/tmp && mount -t tmpfs -o mode=1777 tmpfs /mnt/tmp && cp -a /tmp/. /mnt/tmp/ &&
	mount --move /mnt/tmp /tmp || note "cannot mount tmpfs at /tmp"
mnt tmpfs tmpfs /run
mnt devpts devpts /dev/pts
mnt tmpfs tmpfs /dev/shm
ip link set lo up || note "cannot bring up the loopback interface"
hostname vmtest
`)
	if len(im.Runtime) > 0 {
		b.WriteString(`[ "$vmtest_moved" = 1 ] || note "cannot move the root to a mount of its own: runc will fail to pivot_root"
`)
	}
	for _, m := range im.guestModules() {
		fmt.Fprintf(&b, "insmod %s || note %s\n", shellQuote(m[1]), shellQuote("cannot load module "+filepath.Base(m[0])))
	}
	fmt.Fprintf(&b, "cd %s || note %s\n", shellQuote(im.WorkDir), shellQuote("cannot enter "+im.WorkDir))
	args := im.Args
	if im.TestBudget > 0 {
		fmt.Fprintf(&b, "up=$(cut -d. -f1 /proc/uptime)\nleft=$((%d - up))\n[ \"$left\" -gt %d ] && left=%d\n[ \"$left\" -lt 10 ] && left=10\n",
			int(im.TestBudget.Seconds()), int(im.TestTimeout.Seconds()), int(im.TestTimeout.Seconds()))
		args = append(dropTestFlag(args, "timeout"), "-test.timeout=${left}s")
	}
	b.WriteString("env -i")
	for _, e := range im.Env {
		b.WriteString(" " + shellQuote(e))
	}
	b.WriteString(" " + shellQuote(im.guestBinary()))
	for _, a := range args {
		if a == "-test.timeout=${left}s" {
			b.WriteString(` "-test.timeout=${left}s"`)
			continue
		}
		b.WriteString(" " + shellQuote(a))
	}
	b.WriteString(" </dev/null >&3 2>&3\n")
	// Processes the test left behind must not hold ttyS1 open: closing it
	// last is what waits until the marker has gone out.
	b.WriteString("rc=$?\nkill -9 -1 2>/dev/null\nsleep 0.1\n")
	fmt.Fprintf(&b, "echo %s\"$rc\" >&3\n", shellQuote(marker(im.Token, "")))
	b.WriteString(`exec 3>&-
poweroff -f
`)
	return b.String()
}
