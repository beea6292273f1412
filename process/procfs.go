package process

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/vigilsec/vigil/event"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat start times; it is 100
// on every Linux architecture Vigil runs on.
const clockTicks = 100

// ProcRecord is what /proc tells about one running process.
type ProcRecord struct {
	PID, PPID  uint32
	StartKtime uint64 // boot-relative nanoseconds, at clock-tick precision
	Binary     string
	CWD        string
	Args       []byte // argv as in /proc/PID/cmdline
	Creds      event.Credentials
	AUID       uint32
	CapEff     uint64
	CapPrm     uint64
	CapInh     uint64
	CgroupPath string // cgroup v2 path
	CgroupID   uint64
	NS         event.Namespaces
	Kernel     bool // a kernel thread (no executable)
	Comm       string
}

// ReadProc reads every process under root (normally /proc), parents before
// children. cgroupRoot is the cgroup v2 mount point used to turn cgroup paths
// into ids (empty to skip). Processes that exit during the scan are skipped.
func ReadProc(root, cgroupRoot string) ([]ProcRecord, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", root, err)
	}
	var out []ProcRecord
	for _, d := range ents {
		pid, err := strconv.ParseUint(d.Name(), 10, 32)
		if err != nil {
			continue
		}
		r, err := ReadProcPID(root, uint32(pid), cgroupRoot)
		if err != nil {
			continue // gone, or unreadable
		}
		out = append(out, r)
	}
	// Start time order puts every parent before its children.
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].StartKtime != out[j].StartKtime {
			return out[i].StartKtime < out[j].StartKtime
		}
		return out[i].PID < out[j].PID
	})
	return out, nil
}

// ReadProcPID reads one process from /proc.
func ReadProcPID(root string, pid uint32, cgroupRoot string) (ProcRecord, error) {
	dir := filepath.Join(root, strconv.FormatUint(uint64(pid), 10))
	r := ProcRecord{PID: pid}
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return r, err
	}
	if err := parseStat(stat, &r); err != nil {
		return r, fmt.Errorf("%s/stat: %w", dir, err)
	}
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return r, err
	}
	parseStatus(status, &r)
	if exe, err := os.Readlink(filepath.Join(dir, "exe")); err == nil {
		r.Binary = exe
	} else if errors.Is(err, fs.ErrNotExist) || r.Kernel {
		r.Kernel = true
	}
	if cwd, err := os.Readlink(filepath.Join(dir, "cwd")); err == nil {
		r.CWD = cwd
	}
	if b, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
		r.Args = b
	}
	r.AUID = ^uint32(0)
	if b, err := os.ReadFile(filepath.Join(dir, "loginuid")); err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32); err == nil {
			r.AUID = uint32(v)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "cgroup")); err == nil {
		r.CgroupPath = CgroupV2Path(b)
		if cgroupRoot != "" && r.CgroupPath != "" {
			r.CgroupID, _ = CgroupID(filepath.Join(cgroupRoot, r.CgroupPath))
		}
	}
	r.NS.PidInum = nsInum(filepath.Join(dir, "ns", "pid"))
	r.NS.MntInum = nsInum(filepath.Join(dir, "ns", "mnt"))
	r.NS.NetInum = nsInum(filepath.Join(dir, "ns", "net"))
	return r, nil
}

// parseStat reads ppid, flags and start time from /proc/PID/stat.
func parseStat(b []byte, r *ProcRecord) error {
	// The comm field is in parentheses and may contain anything.
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return errors.New("malformed")
	}
	r.Comm = string(b[open+1 : end])
	f := strings.Fields(string(b[end+1:]))
	// f[0] is state (field 3); ppid is field 4, flags 9, starttime 22.
	if len(f) < 20 {
		return errors.New("too few fields")
	}
	ppid, err := strconv.ParseUint(f[1], 10, 32)
	if err != nil {
		return fmt.Errorf("ppid: %w", err)
	}
	r.PPID = uint32(ppid)
	flags, _ := strconv.ParseUint(f[6], 10, 64)
	const pfKthread = 0x00200000
	r.Kernel = flags&pfKthread != 0
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return fmt.Errorf("starttime: %w", err)
	}
	r.StartKtime = start * (1e9 / clockTicks)
	return nil
}

// parseStatus reads ids and capabilities from /proc/PID/status.
func parseStatus(b []byte, r *ProcRecord) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		k, v, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		fields := strings.Fields(string(v))
		ids := func(a, b, c, d *uint32) {
			if len(fields) < 4 {
				return
			}
			for i, p := range []*uint32{a, b, c, d} {
				if n, err := strconv.ParseUint(fields[i], 10, 32); err == nil {
					*p = uint32(n)
				}
			}
		}
		hex := func() uint64 {
			if len(fields) == 0 {
				return 0
			}
			n, _ := strconv.ParseUint(fields[0], 16, 64)
			return n
		}
		switch string(k) {
		case "Uid":
			ids(&r.Creds.UID, &r.Creds.EUID, &r.Creds.SUID, &r.Creds.FSUID)
		case "Gid":
			ids(&r.Creds.GID, &r.Creds.EGID, &r.Creds.SGID, &r.Creds.FSGID)
		case "CapEff":
			r.CapEff = hex()
		case "CapPrm":
			r.CapPrm = hex()
		case "CapInh":
			r.CapInh = hex()
		}
	}
}

// CgroupV2Path returns the cgroup v2 path ("0::/path") from the content of
// /proc/PID/cgroup.
func CgroupV2Path(b []byte) string {
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		if p, ok := bytes.CutPrefix(line, []byte("0::")); ok {
			return string(p)
		}
	}
	return ""
}

// CgroupID returns the id of the cgroup v2 directory dir: its inode number,
// which is what bpf_get_current_cgroup_id reports.
func CgroupID(dir string) (uint64, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return 0, err
	}
	return inodeOf(fi), nil
}

func nsInum(link string) uint32 {
	s, err := os.Readlink(link)
	if err != nil {
		return 0
	}
	// "pid:[4026531836]"
	i := strings.IndexByte(s, '[')
	j := strings.IndexByte(s, ']')
	if i < 0 || j < i {
		return 0
	}
	n, _ := strconv.ParseUint(s[i+1:j], 10, 32)
	return uint32(n)
}

// initPidNSInode is the inode of the initial pid namespace, fixed by the
// kernel (PROC_PID_INIT_INO).
const initPidNSInode = 0xEFFFFFFC

// HostNamespaces returns the namespaces of PID 1 as seen through root. When
// PID 1's namespaces cannot be read (some sandboxes deny it), the initial pid
// namespace's fixed inode stands in; the mount and network namespaces stay
// unknown.
func HostNamespaces(root string) event.Namespaces {
	dir := filepath.Join(root, "1", "ns")
	ns := event.Namespaces{
		PidInum: nsInum(filepath.Join(dir, "pid")),
		MntInum: nsInum(filepath.Join(dir, "mnt")),
		NetInum: nsInum(filepath.Join(dir, "net")),
	}
	if ns.PidInum == 0 {
		ns.PidInum = initPidNSInode
	}
	return ns
}

// AddProc inserts a process read from /proc, unless the cache already has a
// fresher entry for its pid (from a kernel record that arrived meanwhile).
func (c *Cache) AddProc(r *ProcRecord) *event.Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.byPID[r.PID]; e != nil && e.exitedAt == 0 {
		return &e.proc
	}
	c.scratch, _ = appendArgs(c.scratch[:0], r.Args)
	formatted := c.scratch
	binary := r.Binary
	if r.Kernel {
		binary = "[" + r.Comm + "]"
	}
	e, buf := newEntry(execIDLen(c.cfg.NodeName) + len(binary) + len(r.CWD) + len(formatted))
	a := arena{buf: buf}
	p := &e.proc
	p.PID, p.TID = r.PID, r.PID
	p.Ktime = r.StartKtime
	p.StartTime = c.cfg.Clock.Wall(r.StartKtime)
	p.ExecID = a.appendExecID(c.cfg.NodeName, c.cfg.Clock.IDTime(r.StartKtime), r.PID)
	p.Binary = a.addString(binary)
	p.CWD = a.addString(r.CWD)
	p.Arguments = a.add(formatted)
	p.UID = r.Creds.UID
	p.AUID = r.AUID
	p.Creds = r.Creds
	p.CapEffective, p.CapPermitted, p.CapInheritable = r.CapEff, r.CapPrm, r.CapInh
	p.CgroupID = r.CgroupID
	p.Namespaces = c.namespaces(r.NS.PidInum, r.NS.MntInum, r.NS.NetInum)
	p.Flags = event.FlagProcFS
	if r.CWD == "/" {
		p.Flags |= event.FlagRootCWD
	}
	if parent := c.byPID[r.PPID]; parent != nil && r.PPID != 0 {
		e.parent = parent
		p.ParentExecID = parent.proc.ExecID
	} else if r.PID != 1 && r.PPID != 0 {
		p.Flags |= event.FlagNoParent
	}
	p.Pod = c.pod(p.CgroupID, e.parent)
	c.insert(e, 0)
	return p
}

// inodeOf returns the inode number of a file.
func inodeOf(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
