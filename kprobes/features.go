package kprobes

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Feature is one kernel capability that Vigil probes by loading (and where it
// matters, attaching) a minimal program.
type Feature string

const (
	FeatureKprobe         Feature = "kprobe"
	FeatureKretprobe      Feature = "kretprobe"
	FeatureKprobeMulti    Feature = "kprobe_multi"
	FeatureFentry         Feature = "fentry"
	FeatureFexit          Feature = "fexit"
	FeatureFmodRet        Feature = "fmod_ret"
	FeatureFmodRetSyscall Feature = "fmod_ret_syscall"
	FeatureLSM            Feature = "lsm"
	FeatureTracepoint     Feature = "tracepoint"
	FeatureTpBTF          Feature = "tp_btf"
	FeatureRawTracepoint  Feature = "raw_tracepoint"
	FeatureCgroupConnect4 Feature = "cgroup_connect4"
	FeatureCgroupSendmsg4 Feature = "cgroup_sendmsg4"
	FeatureCgroupSKB      Feature = "cgroup_skb"
	FeatureRingbuf        Feature = "ringbuf"
	FeatureSendSignal     Feature = "send_signal"
	FeatureOverrideReturn Feature = "override_return"
	FeatureBPFStats       Feature = "bpf_stats"
	FeatureUprobe         Feature = "uprobe"
	FeatureUprobeMulti    Feature = "uprobe_multi"
)

// AllFeatures lists the probed features in report order.
var AllFeatures = []Feature{
	FeatureKprobe, FeatureKretprobe, FeatureKprobeMulti,
	FeatureFentry, FeatureFexit, FeatureFmodRet, FeatureFmodRetSyscall, FeatureLSM,
	FeatureTracepoint, FeatureTpBTF, FeatureRawTracepoint,
	FeatureCgroupConnect4, FeatureCgroupSendmsg4, FeatureCgroupSKB,
	FeatureRingbuf, FeatureSendSignal, FeatureOverrideReturn, FeatureBPFStats,
	FeatureUprobe, FeatureUprobeMulti,
}

var featureDescriptions = map[Feature]string{
	FeatureKprobe:         "kprobe on vfs_read",
	FeatureKretprobe:      "kretprobe on vfs_read",
	FeatureKprobeMulti:    "kprobe.multi link on vfs_read, vfs_write",
	FeatureFentry:         "fentry on vfs_read",
	FeatureFexit:          "fexit on vfs_read",
	FeatureFmodRet:        "fmod_ret on security_file_open",
	FeatureFmodRetSyscall: "fmod_ret on a syscall (__x64_sys_getpid)",
	FeatureLSM:            "BPF LSM program on file_open",
	FeatureTracepoint:     "tracepoint syscalls/sys_enter_getpid",
	FeatureTpBTF:          "tp_btf sched_process_exec",
	FeatureRawTracepoint:  "raw tracepoint sys_enter",
	FeatureCgroupConnect4: "cgroup/connect4 attach",
	FeatureCgroupSendmsg4: "cgroup/sendmsg4 attach",
	FeatureCgroupSKB:      "cgroup_skb/egress attach",
	FeatureRingbuf:        "BPF ring buffer map",
	FeatureSendSignal:     "bpf_send_signal helper",
	FeatureOverrideReturn: "bpf_override_return helper",
	FeatureBPFStats:       "BPF run-time statistics",
	FeatureUprobe:         "uprobe on the agent's own entry point",
	FeatureUprobeMulti:    "uprobe.multi link on the agent's own entry point",
}

// Description says how the feature is probed.
func (f Feature) Description() string { return featureDescriptions[f] }

// Result is the outcome of one probe.
type Result struct {
	OK bool `json:"ok"`
	// Error is why the probe failed, as the kernel reported it.
	Error string `json:"error,omitempty"`
}

// KernelInfo is what Vigil reads about the running kernel without loading
// anything.
type KernelInfo struct {
	Release    string   `json:"release"`
	BTF        bool     `json:"btf"`
	Lockdown   string   `json:"lockdown"`
	LSMs       []string `json:"lsms"`
	BPFLSM     bool     `json:"bpf_lsm"`
	BPFFS      string   `json:"bpffs"`
	Cgroup2    string   `json:"cgroup2"`
	Tracefs    string   `json:"tracefs"`
	Securityfs bool     `json:"securityfs"`
}

// Features is the result of probing the running kernel.
type Features struct {
	Kernel  KernelInfo         `json:"kernel"`
	Results map[Feature]Result `json:"features"`
	Plans   []Plan             `json:"hooks"`
}

// Has reports whether the feature probe succeeded.
func (f *Features) Has(feat Feature) bool {
	return f != nil && f.Results[feat].OK
}

// ErrPrerequisite is returned by Probe when the environment cannot run BPF at
// all; its message says what is missing and how to fix it.
var ErrPrerequisite = errors.New("missing prerequisite")

type prerequisiteError struct{ msg string }

func (e *prerequisiteError) Error() string        { return e.msg }
func (e *prerequisiteError) Is(target error) bool { return target == ErrPrerequisite }

// Paths overrides where Probe looks for kernel interfaces. Zero values mean
// the standard locations; tests use them to simulate missing pieces.
type Paths struct {
	BTF        string // default /sys/kernel/btf/vmlinux
	BPFFS      string // default /sys/fs/bpf
	Securityfs string // default /sys/kernel/security
	Mountinfo  string // default /proc/self/mountinfo
}

func (p *Paths) withDefaults() Paths {
	out := Paths{}
	if p != nil {
		out = *p
	}
	if out.BTF == "" {
		out.BTF = "/sys/kernel/btf/vmlinux"
	}
	if out.BPFFS == "" {
		out.BPFFS = "/sys/fs/bpf"
	}
	if out.Securityfs == "" {
		out.Securityfs = "/sys/kernel/security"
	}
	if out.Mountinfo == "" {
		out.Mountinfo = "/proc/self/mountinfo"
	}
	return out
}

// CheckPrerequisites verifies that BPF can be used at all: the caller has the
// capabilities, the kernel exposes BTF, and bpffs is mounted. Each failure is
// an ErrPrerequisite whose message says what to do.
func CheckPrerequisites(paths *Paths) error {
	p := paths.withDefaults()
	if err := checkCapabilities(); err != nil {
		return err
	}
	if _, err := os.Stat(p.BTF); err != nil {
		return &prerequisiteError{fmt.Sprintf("kernel BTF not found at %s: Vigil needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distribution kernels since 5.4 are)", p.BTF)}
	}
	mounts, err := readMounts(p.Mountinfo)
	if err != nil {
		return &prerequisiteError{fmt.Sprintf("read %s: %v", p.Mountinfo, err)}
	}
	if mounts.fsAt(p.BPFFS) != "bpf" {
		return &prerequisiteError{fmt.Sprintf("bpffs is not mounted at %s: run 'mount -t bpf bpf %s' (in a pod, mount the host's %s)", p.BPFFS, p.BPFFS, p.BPFFS)}
	}
	return nil
}

const (
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

func checkCapabilities() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return &prerequisiteError{fmt.Sprintf("read capabilities: %v", err)}
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	if has(capSysAdmin) || (has(capBPF) && has(capPerfmon)) {
		return nil
	}
	return &prerequisiteError{"insufficient privileges: Vigil needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN); run it as root or grant those capabilities"}
}

// Probe inspects the running kernel. It returns an ErrPrerequisite when BPF
// cannot be used at all. Every program and link it creates is closed before
// it returns, and any temporary cgroup is removed.
func Probe(paths *Paths) (*Features, error) {
	p := paths.withDefaults()
	if err := CheckPrerequisites(&p); err != nil {
		return nil, err
	}
	info, err := readKernelInfo(p)
	if err != nil {
		return nil, err
	}
	f := &Features{Kernel: info, Results: make(map[Feature]Result, len(AllFeatures))}
	for _, feat := range AllFeatures {
		err := probeFns[feat](&f.Kernel)
		r := Result{OK: err == nil}
		if err != nil {
			r.Error = describeProbeError(err)
		}
		f.Results[feat] = r
	}
	f.Plans = planAll(f)
	return f, nil
}

func describeProbeError(err error) string {
	msg := err.Error()
	switch {
	case errors.Is(err, unix.EPERM):
		msg += " (refused with EPERM)"
	case errors.Is(err, ebpf.ErrNotSupported) && !strings.Contains(msg, "not supported"):
		msg += " (not supported by this kernel)"
	}
	return msg
}

func readKernelInfo(p Paths) (KernelInfo, error) {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return KernelInfo{}, fmt.Errorf("uname: %w", err)
	}
	info := KernelInfo{Release: unix.ByteSliceToString(uts.Release[:])}
	_, err := os.Stat(p.BTF)
	info.BTF = err == nil

	mounts, err := readMounts(p.Mountinfo)
	if err != nil {
		return KernelInfo{}, err
	}
	info.BPFFS = p.BPFFS
	info.Cgroup2 = mounts.firstOfType("cgroup2")
	info.Tracefs = mounts.firstOfType("tracefs")
	info.Securityfs = mounts.fsAt(p.Securityfs) == "securityfs"

	info.Lockdown = "unknown (securityfs not mounted)"
	info.LSMs = []string{}
	if info.Securityfs {
		if b, err := os.ReadFile(filepath.Join(p.Securityfs, "lockdown")); err == nil {
			info.Lockdown = parseLockdown(string(b))
		} else {
			info.Lockdown = "none (no lockdown LSM)"
		}
		if b, err := os.ReadFile(filepath.Join(p.Securityfs, "lsm")); err == nil {
			for _, l := range strings.Split(strings.TrimSpace(string(b)), ",") {
				if l != "" {
					info.LSMs = append(info.LSMs, l)
				}
			}
		}
	}
	for _, l := range info.LSMs {
		if l == "bpf" {
			info.BPFLSM = true
		}
	}
	return info, nil
}

// parseLockdown returns the active mode of a lockdown file such as
// "none [integrity] confidentiality".
func parseLockdown(s string) string {
	for _, f := range strings.Fields(s) {
		if strings.HasPrefix(f, "[") && strings.HasSuffix(f, "]") {
			return strings.Trim(f, "[]")
		}
	}
	return strings.TrimSpace(s)
}

type mount struct{ point, fstype string }

type mountTable []mount

func readMounts(path string) (mountTable, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	infos, err := mountinfo.GetMountsFromReader(f, nil)
	if err != nil {
		return nil, fmt.Errorf("read mounts: %s: %w", path, err)
	}
	out := make(mountTable, len(infos))
	for i, m := range infos {
		out[i] = mount{point: m.Mountpoint, fstype: m.FSType}
	}
	return out, nil
}

// fsAt returns the type of the file system mounted last at point.
func (m mountTable) fsAt(point string) string {
	fs := ""
	for _, e := range m {
		if e.point == point {
			fs = e.fstype
		}
	}
	return fs
}

func (m mountTable) firstOfType(fstype string) string {
	for _, e := range m {
		if e.fstype == fstype {
			return e.point
		}
	}
	return ""
}

var retZero = asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}
var retOne = asm.Instructions{asm.Mov.Imm(asm.R0, 1), asm.Return()}

type probeFn func(k *KernelInfo) error

var probeFns = map[Feature]probeFn{
	FeatureKprobe: func(*KernelInfo) error {
		if err := kprobesBuiltIn(); err != nil {
			return err
		}
		return withProgram(&ebpf.ProgramSpec{Type: ebpf.Kprobe}, func(p *ebpf.Program) (link.Link, error) {
			return link.Kprobe("vfs_read", p, nil)
		})
	},
	FeatureKretprobe: func(*KernelInfo) error {
		if err := kprobesBuiltIn(); err != nil {
			return err
		}
		return withProgram(&ebpf.ProgramSpec{Type: ebpf.Kprobe}, func(p *ebpf.Program) (link.Link, error) {
			return link.Kretprobe("vfs_read", p, nil)
		})
	},
	FeatureKprobeMulti: func(*KernelInfo) error {
		spec := &ebpf.ProgramSpec{Type: ebpf.Kprobe, AttachType: ebpf.AttachTraceKprobeMulti}
		return withProgram(spec, func(p *ebpf.Program) (link.Link, error) {
			return link.KprobeMulti(p, link.KprobeMultiOptions{Symbols: []string{"vfs_read", "vfs_write"}})
		})
	},
	FeatureUprobe: func(*KernelInfo) error {
		ex, off, err := selfEntry()
		if err != nil {
			return err
		}
		return withProgram(&ebpf.ProgramSpec{Type: ebpf.Kprobe}, func(p *ebpf.Program) (link.Link, error) {
			return ex.Uprobe("", p, &link.UprobeOptions{Address: off})
		})
	},
	FeatureUprobeMulti: func(*KernelInfo) error {
		ex, off, err := selfEntry()
		if err != nil {
			return err
		}
		spec := &ebpf.ProgramSpec{Type: ebpf.Kprobe, AttachType: ebpf.AttachTraceUprobeMulti}
		return withProgram(spec, func(p *ebpf.Program) (link.Link, error) {
			return ex.UprobeMulti(nil, p, &link.UprobeMultiOptions{Addresses: []uint64{off}})
		})
	},
	FeatureFentry:  tracingProbe(ebpf.AttachTraceFEntry, "vfs_read"),
	FeatureFexit:   tracingProbe(ebpf.AttachTraceFExit, "vfs_read"),
	FeatureFmodRet: tracingProbe(ebpf.AttachModifyReturn, "security_file_open"),
	FeatureFmodRetSyscall: func(k *KernelInfo) error {
		return tracingProbe(ebpf.AttachModifyReturn, SyscallSymbol("getpid"))(k)
	},
	FeatureLSM: func(*KernelInfo) error {
		spec := &ebpf.ProgramSpec{Type: ebpf.LSM, AttachType: ebpf.AttachLSMMac, AttachTo: "file_open"}
		return withProgram(spec, func(p *ebpf.Program) (link.Link, error) {
			return link.AttachLSM(link.LSMOptions{Program: p})
		})
	},
	FeatureTracepoint: func(k *KernelInfo) error {
		if k.Tracefs == "" {
			return errors.New("tracefs is not mounted (mount -t tracefs tracefs /sys/kernel/tracing)")
		}
		return withProgram(&ebpf.ProgramSpec{Type: ebpf.TracePoint}, func(p *ebpf.Program) (link.Link, error) {
			return link.Tracepoint("syscalls", "sys_enter_getpid", p, nil)
		})
	},
	FeatureTpBTF: tracingProbe(ebpf.AttachTraceRawTp, "sched_process_exec"),
	FeatureRawTracepoint: func(*KernelInfo) error {
		return withProgram(&ebpf.ProgramSpec{Type: ebpf.RawTracepoint}, func(p *ebpf.Program) (link.Link, error) {
			return link.AttachRawTracepoint(link.RawTracepointOptions{Name: "sys_enter", Program: p})
		})
	},
	FeatureCgroupConnect4: cgroupProbe(ebpf.CGroupSockAddr, ebpf.AttachCGroupInet4Connect),
	FeatureCgroupSendmsg4: cgroupProbe(ebpf.CGroupSockAddr, ebpf.AttachCGroupUDP4Sendmsg),
	FeatureCgroupSKB:      cgroupProbe(ebpf.CGroupSKB, ebpf.AttachCGroupInetEgress),
	FeatureRingbuf: func(*KernelInfo) error {
		m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: uint32(os.Getpagesize())})
		if err != nil {
			return err
		}
		return m.Close()
	},
	FeatureSendSignal: func(*KernelInfo) error {
		return features.HaveProgramHelper(ebpf.TracePoint, asm.FnSendSignal)
	},
	FeatureOverrideReturn: func(*KernelInfo) error {
		return features.HaveProgramHelper(ebpf.Kprobe, asm.FnOverrideReturn)
	},
	FeatureBPFStats: func(*KernelInfo) error {
		c, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
		if err != nil {
			return err
		}
		return c.Close()
	},
}

// selfEntry is this process's executable and the file offset of its entry
// point: a place every ELF executable has, symbols or not, for probing
// uprobes without depending on any other file.
func selfEntry() (*link.Executable, uint64, error) {
	f, err := elf.Open("/proc/self/exe")
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	off, ok := uint64(0), false
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && f.Entry >= p.Vaddr && f.Entry < p.Vaddr+p.Filesz {
			off, ok = f.Entry-p.Vaddr+p.Off, true
			break
		}
	}
	if !ok {
		return nil, 0, fmt.Errorf("/proc/self/exe: entry point %#x is in no executable segment", f.Entry)
	}
	ex, err := link.OpenExecutable("/proc/self/exe")
	if err != nil {
		return nil, 0, err
	}
	return ex, off, nil
}

// withProgram loads spec (with a trivial body when it has none), attaches it
// with attach and closes everything again.
func withProgram(spec *ebpf.ProgramSpec, attach func(*ebpf.Program) (link.Link, error)) error {
	spec = spec.Copy()
	if len(spec.Instructions) == 0 {
		spec.Instructions = retZero
		if spec.Type == ebpf.CGroupSKB || spec.Type == ebpf.CGroupSockAddr {
			spec.Instructions = retOne
		}
	}
	spec.License = "GPL"
	// A collection of one program, for the shared kernel BTF (a lone
	// program load indexes it anew for its attach target).
	coll, err := LoadCollection(&ebpf.CollectionSpec{Programs: map[string]*ebpf.ProgramSpec{"probe": spec}},
		ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{LogDisabled: true}})
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	prog := coll.DetachProgram("probe")
	coll.Close()
	defer prog.Close()
	if attach == nil {
		return nil
	}
	l, err := attach(prog)
	if err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	return l.Close()
}

func tracingProbe(at ebpf.AttachType, target string) probeFn {
	return func(*KernelInfo) error {
		spec := &ebpf.ProgramSpec{Type: ebpf.Tracing, AttachType: at, AttachTo: target}
		return withProgram(spec, func(p *ebpf.Program) (link.Link, error) {
			return link.AttachTracing(link.TracingOptions{Program: p})
		})
	}
}

func cgroupProbe(pt ebpf.ProgramType, at ebpf.AttachType) probeFn {
	return func(k *KernelInfo) error {
		if k.Cgroup2 == "" {
			return errors.New("no cgroup v2 hierarchy is mounted (mount -t cgroup2 none /sys/fs/cgroup)")
		}
		dir, err := os.MkdirTemp(k.Cgroup2, "vigil-probe-")
		if err != nil {
			return fmt.Errorf("create probe cgroup: %w", err)
		}
		defer os.Remove(dir)
		spec := &ebpf.ProgramSpec{Type: pt, AttachType: at}
		return withProgram(spec, func(p *ebpf.Program) (link.Link, error) {
			return link.AttachCgroup(link.CgroupOptions{Path: dir, Attach: at, Program: p})
		})
	}
}

// kprobesBuiltIn tells a kernel without kprobes apart from a failed attach:
// such a kernel has neither the kprobe PMU nor kprobe_events in tracefs.
func kprobesBuiltIn() error {
	if _, err := os.Stat("/sys/bus/event_source/devices/kprobe"); err == nil {
		return nil
	}
	for _, dir := range []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"} {
		if _, err := os.Stat(filepath.Join(dir, "kprobe_events")); err == nil {
			return nil
		}
	}
	return fmt.Errorf("kprobes are not built into this kernel (no kprobe PMU, no kprobe_events): %w", ebpf.ErrNotSupported)
}
