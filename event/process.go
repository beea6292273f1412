package event

import (
	"math/bits"
	"time"
)

// Process describes one execution of a binary (or one fork that has not
// exec'd yet). Values are immutable once published by the process cache:
// enrichment that arrives later (a pod, for instance) produces a new value.
type Process struct {
	// ExecID identifies this execution across the node and across reboots.
	ExecID       string
	ParentExecID string

	PID  uint32
	TID  uint32
	UID  uint32
	AUID uint32
	// Creds are the credentials at exec time.
	Creds Credentials

	CWD    string
	Binary string
	// Arguments are the arguments after argv[0], joined by spaces; arguments
	// that contain spaces (or are empty) are quoted.
	Arguments string
	// Argv0 is argv[0] when its base name differs from the binary's (exec
	// -a, a busybox applet, a symbolic link's name); empty otherwise.
	Argv0 string
	// Env are the environment variables at exec whose names were asked for
	// (the agent's --exec-env), in the order of the environment.
	Env   []EnvVar
	Flags Flags

	// StartTime is when this execution began (exec time, or fork time for a
	// process that has not exec'd).
	StartTime time.Time
	// Ktime is StartTime in kernel monotonic (boot-relative) nanoseconds.
	Ktime uint64

	CapPermitted uint64
	CapEffective uint64
	// CapInheritable is informational; policies match on the other two.
	CapInheritable uint64

	Namespaces Namespaces
	CgroupID   uint64

	BinaryProperties BinaryProperties

	Pod *Pod
}

// EnvVar is one environment variable.
type EnvVar struct {
	Key, Value string
}

// Credentials are the ids of a process, as in struct cred.
type Credentials struct {
	UID, GID, EUID, EGID, SUID, SGID, FSUID, FSGID uint32
}

// Namespaces holds the namespace inode numbers of a process and whether each
// is the host's (the one of PID 1 when the agent started).
type Namespaces struct {
	PidInum, MntInum, NetInum       uint32
	PidIsHost, MntIsHost, NetIsHost bool
}

// BinaryProperties describe the executed file.
type BinaryProperties struct {
	// Setuid and Setgid are the file's owner ids when it has the set-id bit.
	Setuid, Setgid *uint32
	InodeNumber    uint64
	InodeLinks     uint32
	UpperLayer     bool // on the upper (writable) layer of an overlayfs
	Memfd          bool // an anonymous memory file (memfd_create)
	Deleted        bool // unlinked from the file system
	// PrivilegesChanged says how the exec raised the process's privileges.
	PrivilegesChanged PrivilegeChanges
}

// PrivilegeChanges are the ways an exec raised privileges, as Tetragon's
// ProcessPrivilegesChanged values.
type PrivilegeChanges uint8

const (
	// PrivilegesRaisedFileCap: the file's capabilities raised the
	// process's capabilities.
	PrivilegesRaisedFileCap PrivilegeChanges = 1 << iota
	// PrivilegesRaisedSetuid: the file's set-user-ID bit changed the
	// effective user ID.
	PrivilegesRaisedSetuid
	// PrivilegesRaisedSetgid: the file's set-group-ID bit changed the
	// effective group ID.
	PrivilegesRaisedSetgid
	privilegeChangesLast
)

var privilegeChangeNames = [...]string{
	"PRIVILEGES_RAISED_EXEC_FILE_CAP", "PRIVILEGES_RAISED_EXEC_FILE_SETUID", "PRIVILEGES_RAISED_EXEC_FILE_SETGID",
}

// Names returns the names of the set changes in bit order, as Tetragon
// spells its ProcessPrivilegesChanged values.
func (c PrivilegeChanges) Names() []string {
	var out []string
	for i, n := range privilegeChangeNames {
		if c&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// NameAt returns the name of bit i of the set and whether it is set.
func (c PrivilegeChanges) NameAt(i int) (string, bool) {
	if i < 0 || i >= len(privilegeChangeNames) || c&(1<<i) == 0 {
		return "", false
	}
	return privilegeChangeNames[i], true
}

// Flags record how a process entry was obtained and what was truncated.
type Flags uint32

const (
	FlagExecve Flags = 1 << iota
	FlagClone
	FlagProcFS
	FlagTruncFilename
	FlagTruncArgs
	FlagTruncCWD
	FlagRootCWD
	FlagErrorFilename
	FlagErrorCWD
	FlagErrorArgs
	FlagNoParent
	FlagTruncEnv
	FlagErrorEnv
	flagLast
)

var flagNames = []string{
	"execve", "clone", "procFS", "truncFilename", "truncArgs", "truncCwd",
	"rootcwd", "errorFilename", "errorCWD", "errorArgs", "nop",
	"truncEnv", "errorEnv",
}

// flagOrder is the order of the names in a flags string: Tetragon's order
// for the flags Tetragon also has (execve, procFS, truncArgs,
// errorFilename, errorArgs, rootcwd, errorCWD, clone), Vigil's own
// (truncFilename, truncCwd, truncEnv, errorEnv, nop) next to their
// relatives.
var flagOrder = [...]Flags{
	FlagExecve, FlagProcFS, FlagTruncFilename, FlagTruncArgs, FlagTruncCWD, FlagTruncEnv, FlagErrorFilename,
	FlagErrorArgs, FlagErrorEnv, FlagRootCWD, FlagErrorCWD, FlagClone, FlagNoParent,
}

// String joins the names of the set flags with spaces, as Tetragon does.
func (f Flags) String() string {
	return string(f.Append(nil))
}

// Append appends the set flag names, space separated, to dst.
func (f Flags) Append(dst []byte) []byte {
	first := true
	for _, bit := range flagOrder {
		if f&bit == 0 {
			continue
		}
		name := flagNames[bits.TrailingZeros32(uint32(bit))]
		if !first {
			dst = append(dst, ' ')
		}
		dst = append(dst, name...)
		first = false
	}
	return dst
}

// Pod is the Kubernetes (or standalone workload) identity of a process.
type Pod struct {
	Namespace    string
	Name         string
	UID          string
	Labels       []Label // sorted by key
	Workload     string
	WorkloadKind string
	Container    Container
}

// Label is one key/value pair of a label set.
type Label struct {
	Key, Value string
}

// Container identifies the container a process runs in.
type Container struct {
	ID        string
	Name      string
	ImageName string
	ImageID   string
	StartTime time.Time
}
