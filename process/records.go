package process

import (
	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/kprobes/abi"
)

// Exec flags reported by the kernel.
const (
	execTruncPath  = uint32(abi.ProcessExecFlagsEXEC_F_TRUNC_PATH)
	execErrPath    = uint32(abi.ProcessExecFlagsEXEC_F_ERR_PATH)
	execTruncCWD   = uint32(abi.ProcessExecFlagsEXEC_F_TRUNC_CWD)
	execErrCWD     = uint32(abi.ProcessExecFlagsEXEC_F_ERR_CWD)
	execTruncArgs  = uint32(abi.ProcessExecFlagsEXEC_F_TRUNC_ARGS)
	execErrArgs    = uint32(abi.ProcessExecFlagsEXEC_F_ERR_ARGS)
	execUpperLayer = uint32(abi.ProcessExecFlagsEXEC_F_UPPER_LAYER)
	execMemfd      = uint32(abi.ProcessExecFlagsEXEC_F_MEMFD)
	execDeleted    = uint32(abi.ProcessExecFlagsEXEC_F_DELETED)
	execSetuid     = uint32(abi.ProcessExecFlagsEXEC_F_SETUID)
	execSetgid     = uint32(abi.ProcessExecFlagsEXEC_F_SETGID)
	execTruncEnv   = uint32(abi.ProcessExecFlagsEXEC_F_TRUNC_ENV)
	execErrEnv     = uint32(abi.ProcessExecFlagsEXEC_F_ERR_ENV)
)

// Exec records the exec of rec.Hdr.Pid and returns the new process and its
// parent (nil when the parent is unknown).
func (c *Cache) Exec(rec *abi.ExecEvent, data []byte) (proc, parent *event.Process) {
	path, cwd, args, env := abi.ExecData(rec, data)

	c.mu.Lock()
	defer c.mu.Unlock()

	var argv0 []byte
	c.scratch, argv0 = appendArgs(c.scratch[:0], args)
	formatted := c.scratch
	if !argv0Differs(argv0, path) {
		argv0 = nil
	}
	c.envScratch = c.envScratch[:0]
	if len(env) > 0 && len(c.cfg.ExecEnv) > 0 {
		head, tail := abi.ExecEnvParts(rec, env)
		split := len(tail) > 0
		c.envScratch = matchEnv(c.envScratch, head, c.cfg.ExecEnv, false, split)
		if split {
			c.envScratch = matchEnv(c.envScratch, tail, c.cfg.ExecEnv, true, false)
		}
	}
	need := execIDLen(c.cfg.NodeName) + len(path) + len(cwd) + len(formatted) + len(argv0) + envSize(c.envScratch)
	e, buf := newEntry(need)
	a := arena{buf: buf}
	p := &e.proc
	p.PID = rec.Hdr.Pid
	p.TID = rec.Hdr.Tid
	p.Ktime = rec.Hdr.Ktime
	p.StartTime = c.cfg.Clock.Wall(rec.Hdr.Ktime)
	p.ExecID = a.appendExecID(c.cfg.NodeName, c.cfg.Clock.IDTime(rec.Hdr.Ktime), rec.Hdr.Pid)
	p.Binary = a.add(path)
	p.CWD = a.add(cwd)
	p.Arguments = a.add(formatted)
	p.Argv0 = a.add(argv0)
	setEnv(e, &a, c.envScratch)
	p.UID = rec.Creds.Uid
	p.AUID = rec.Auid
	p.Creds = event.Credentials{
		UID: rec.Creds.Uid, GID: rec.Creds.Gid, EUID: rec.Creds.Euid, EGID: rec.Creds.Egid,
		SUID: rec.Creds.Suid, SGID: rec.Creds.Sgid, FSUID: rec.Creds.Fsuid, FSGID: rec.Creds.Fsgid,
	}
	p.CapPermitted = rec.Creds.CapPermitted
	p.CapEffective = rec.Creds.CapEffective
	p.CapInheritable = rec.Creds.CapInheritable
	p.CgroupID = rec.CgroupId
	p.Namespaces = c.namespaces(rec.Pidns, rec.Mntns, rec.Netns)
	p.Flags = execFlags(rec.Flags, cwd)
	bp := &p.BinaryProperties
	bp.InodeNumber = rec.Ino
	bp.InodeLinks = rec.Nlink
	bp.UpperLayer = rec.Flags&execUpperLayer != 0
	bp.Memfd = rec.Flags&execMemfd != 0
	bp.Deleted = rec.Flags&execDeleted != 0
	if rec.Flags&execSetuid != 0 {
		e.setuid = rec.FileUid
		bp.Setuid = &e.setuid
	}
	if rec.Flags&execSetgid != 0 {
		e.setgid = rec.FileGid
		bp.Setgid = &e.setgid
	}
	bp.PrivilegesChanged = 0
	if rec.Flags&execSetuid != 0 && rec.Creds.Euid != rec.Creds.Uid {
		bp.PrivilegesChanged |= event.PrivilegesRaisedSetuid
	}
	if rec.Flags&execSetgid != 0 && rec.Creds.Egid != rec.Creds.Gid {
		bp.PrivilegesChanged |= event.PrivilegesRaisedSetgid
	}

	e.parent = c.byPID[rec.Ppid]
	if e.parent != nil {
		c.stats.Hits++
		p.ParentExecID = e.parent.proc.ExecID
	} else {
		c.stats.Misses++
		p.Flags |= event.FlagNoParent
	}
	p.Pod = c.pod(p.CgroupID, e.parent)
	c.insert(e, int64(rec.Hdr.Ktime))
	return p, e.parentProc()
}

func execFlags(f uint32, cwd []byte) event.Flags {
	out := event.FlagExecve
	if f&execTruncPath != 0 {
		out |= event.FlagTruncFilename
	}
	if f&execErrPath != 0 {
		out |= event.FlagErrorFilename
	}
	if f&execTruncCWD != 0 {
		out |= event.FlagTruncCWD
	}
	if f&execErrCWD != 0 {
		out |= event.FlagErrorCWD
	}
	if f&execTruncArgs != 0 {
		out |= event.FlagTruncArgs
	}
	if f&execErrArgs != 0 {
		out |= event.FlagErrorArgs
	}
	if f&execTruncEnv != 0 {
		out |= event.FlagTruncEnv
	}
	if f&execErrEnv != 0 {
		out |= event.FlagErrorEnv
	}
	if len(cwd) == 1 && cwd[0] == '/' {
		out |= event.FlagRootCWD
	}
	return out
}

func (c *Cache) namespaces(pid, mnt, net uint32) event.Namespaces {
	h := c.cfg.HostNS
	return event.Namespaces{
		PidInum: pid, MntInum: mnt, NetInum: net,
		PidIsHost: h.PidInum != 0 && pid == h.PidInum,
		MntIsHost: h.MntInum != 0 && mnt == h.MntInum,
		NetIsHost: h.NetInum != 0 && net == h.NetInum,
	}
}

func (c *Cache) pod(cgroupID uint64, parent *entry) *event.Pod {
	if c.cfg.Pods != nil {
		if pod := c.cfg.Pods.PodForCgroup(cgroupID); pod != nil {
			return pod
		}
	}
	if parent != nil && parent.proc.CgroupID == cgroupID {
		return parent.proc.Pod
	}
	return nil
}

// Fork records a new thread group created by fork or clone. The child runs
// its parent's binary until it execs.
func (c *Cache) Fork(rec *abi.ForkEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()

	parent := c.byPID[rec.Ppid]
	e, buf := newEntry(execIDLen(c.cfg.NodeName))
	a := arena{buf: buf}
	p := &e.proc
	if parent != nil {
		c.stats.Hits++
		*p = parent.proc
		p.ParentExecID = parent.proc.ExecID
		p.BinaryProperties.Setuid, p.BinaryProperties.Setgid = nil, nil
		if parent.proc.BinaryProperties.Setuid != nil {
			e.setuid = *parent.proc.BinaryProperties.Setuid
			p.BinaryProperties.Setuid = &e.setuid
		}
		if parent.proc.BinaryProperties.Setgid != nil {
			e.setgid = *parent.proc.BinaryProperties.Setgid
			p.BinaryProperties.Setgid = &e.setgid
		}
		p.Flags = (parent.proc.Flags &^ (event.FlagExecve | event.FlagProcFS | event.FlagNoParent)) | event.FlagClone
	} else {
		c.stats.Misses++
		p.Flags = event.FlagClone | event.FlagNoParent
	}
	p.PID = rec.Hdr.Pid
	p.TID = rec.Hdr.Tid
	p.Ktime = rec.StartKtime
	p.StartTime = c.cfg.Clock.Wall(rec.StartKtime)
	p.ExecID = a.appendExecID(c.cfg.NodeName, c.cfg.Clock.IDTime(rec.StartKtime), rec.Hdr.Pid)
	e.parent = parent
	c.insert(e, int64(rec.Hdr.Ktime))
}

// Exit records the exit of a thread group and returns the process, its
// parent and the exit status. A process the cache never saw is returned as
// a minimal entry with the pid only.
func (c *Cache) Exit(rec *abi.ExitEvent) (proc, parent *event.Process, exit event.Exit) {
	exit = DecodeExitCode(rec.ExitCode)

	c.mu.Lock()
	defer c.mu.Unlock()

	now := int64(rec.Hdr.Ktime)
	e := c.byPID[rec.Hdr.Pid]
	if e == nil || e.exitedAt != 0 {
		c.stats.Misses++
		n, buf := newEntry(execIDLen(c.cfg.NodeName))
		a := arena{buf: buf}
		n.proc.PID = rec.Hdr.Pid
		n.proc.TID = rec.Hdr.Tid
		n.proc.Ktime = rec.StartKtime
		n.proc.StartTime = c.cfg.Clock.Wall(rec.StartKtime)
		n.proc.ExecID = a.appendExecID(c.cfg.NodeName, c.cfg.Clock.IDTime(rec.StartKtime), rec.Hdr.Pid)
		n.proc.Flags = event.FlagNoParent
		c.insert(n, now)
		e = n
	} else {
		c.stats.Hits++
	}
	e.exitedAt = max(now, 1)
	e.exitStatus = exit
	if !e.queued {
		e.queued = true
		c.exited.push(e)
	}
	return &e.proc, e.parentProc(), exit
}

// DecodeExitCode splits a wait(2) status into exit status and signal.
func DecodeExitCode(code uint32) event.Exit {
	return event.Exit{
		Status:     (code >> 8) & 0xff,
		Signal:     code & 0x7f,
		CoreDumped: code&0x80 != 0,
	}
}
