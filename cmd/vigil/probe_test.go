package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/kerneltest"
	"github.com/vigilsec/vigil/kprobes"
)

// wantPlans is the mechanism `vigil probe` must choose for each hook and
// action ("hook/action") on our test kernels, by kerneltest.Known name.
var wantPlans = map[string]map[string]kprobes.Mechanism{
	"host 6.18": {
		"kernel_function/post": kprobes.MechUnavailable, "kernel_function/sigkill": kprobes.MechUnavailable, "kernel_function/override": kprobes.MechUnavailable,
		"syscall/post": kprobes.MechTracepoint, "syscall/sigkill": kprobes.MechSendSignal, "syscall/override": kprobes.MechUnavailable,
		"lsm_hook/post": kprobes.MechUnavailable, "lsm_hook/sigkill": kprobes.MechUnavailable, "lsm_hook/override": kprobes.MechUnavailable,
		"tracepoint/post": kprobes.MechTracepoint, "tracepoint/sigkill": kprobes.MechSendSignal, "tracepoint/override": kprobes.MechUnavailable,
	},
	"Debian 6.1 cloud":  vmPlans,
	"Debian 6.12 cloud": vmPlans,
}

// vmPlans holds for both Debian kernels: kprobes, LSM and fmod_ret on
// security_* work. Both are built without CONFIG_FUNCTION_ERROR_INJECTION
// and CONFIG_BPF_KPROBE_OVERRIDE, so nothing can override a syscall's result.
var vmPlans = map[string]kprobes.Mechanism{
	"kernel_function/post": kprobes.MechFentry, "kernel_function/sigkill": kprobes.MechSendSignal, "kernel_function/override": kprobes.MechFmodRet,
	"syscall/post": kprobes.MechFentry, "syscall/sigkill": kprobes.MechSendSignal, "syscall/override": kprobes.MechUnavailable,
	"lsm_hook/post": kprobes.MechLSM, "lsm_hook/sigkill": kprobes.MechSendSignal, "lsm_hook/override": kprobes.MechLSM,
	"tracepoint/post": kprobes.MechTracepoint, "tracepoint/sigkill": kprobes.MechSendSignal, "tracepoint/override": kprobes.MechUnavailable,
}

func probeJSON(t *testing.T) *kprobes.Features {
	t.Helper()
	res := runVigil(t, nil, "probe", "--json")
	if res.Code != 0 {
		t.Fatalf("vigil probe --json: exit status %d\nstderr: %s", res.Code, res.Stderr)
	}
	var f kprobes.Features
	dec := json.NewDecoder(strings.NewReader(res.Stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("vigil probe --json printed no valid report: %v\n%s", err, res.Stdout)
	}
	return &f
}

// TestPrivProbe checks what `vigil probe --json` reports on the running
// kernel against what our test kernels must be able to do.
func TestPrivProbe(t *testing.T) {
	kerneltest.Require(t)
	f := probeJSON(t)

	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		t.Fatal(err)
	}
	release := unix.ByteSliceToString(uts.Release[:])
	if f.Kernel.Release != release {
		t.Errorf("kernel release %q, uname says %q", f.Kernel.Release, release)
	}
	if !f.Kernel.BTF || f.Kernel.BPFFS != "/sys/fs/bpf" || f.Kernel.Cgroup2 == "" || f.Kernel.Tracefs == "" || !f.Kernel.Securityfs {
		t.Errorf("kernel info %+v: want BTF, bpffs at /sys/fs/bpf, cgroup v2, tracefs and securityfs (the test tiers mount them)", f.Kernel)
	}
	for _, feat := range kprobes.AllFeatures {
		r, ok := f.Results[feat]
		if !ok {
			t.Errorf("feature %s missing from the report", feat)
		}
		if !r.OK && r.Error == "" {
			t.Errorf("feature %s fails without saying why", feat)
		}
	}
	got := map[string]kprobes.Mechanism{}
	for _, p := range f.Plans {
		key := string(p.Hook) + "/" + string(p.Action)
		if _, dup := got[key]; dup {
			t.Errorf("plan %s reported twice", key)
		}
		got[key] = p.Mechanism
		if !p.Available() && p.Reason == "" {
			t.Errorf("plan %s is unavailable without a reason", key)
		}
	}
	if len(got) != len(kprobes.HookKinds)*len(kprobes.Actions) {
		t.Errorf("%d plans, want one per hook kind and action (%d)", len(got), len(kprobes.HookKinds)*len(kprobes.Actions))
	}

	k, ok := kerneltest.Known()
	if !ok {
		kerneltest.Skip(t, "kernel %s is none of our test kernels; the report is well-formed but there is nothing to compare it with", release)
	}
	gotFeatures := map[kprobes.Feature]bool{}
	var errs []string
	for feat := range k.Features {
		gotFeatures[feat] = f.Results[feat].OK
		if e := f.Results[feat].Error; e != "" {
			errs = append(errs, fmt.Sprintf("  %s: %s", feat, e))
		}
	}
	slices.Sort(errs)
	if diff := cmp.Diff(k.Features, gotFeatures); diff != "" {
		t.Errorf("features on %s (-want +got):\n%s\nprobe errors:\n%s", k.Name, diff, strings.Join(errs, "\n"))
	}
	if diff := cmp.Diff(wantPlans[k.Name], got); diff != "" {
		t.Errorf("hook plans on %s (-want +got):\n%s", k.Name, diff)
	}
	if k.Features[kprobes.FeatureLSM] && !f.Kernel.BPFLSM {
		t.Errorf("%s: bpf is not among the active LSMs %v", k.Name, f.Kernel.LSMs)
	}
	// kprobe.multi, where the kernel has it, serves policies that hook
	// several functions.
	post := f.Plan(kprobes.HookKernelFunction, kprobes.ActionPost)
	if multi := strings.Contains(post.Detail, "kprobe.multi"); multi != k.Features[kprobes.FeatureKprobeMulti] {
		t.Errorf("%s: kernel_function/post detail %q, want kprobe.multi mentioned: %v", k.Name, post.Detail, k.Features[kprobes.FeatureKprobeMulti])
	}
}

// TestPrivProbeTable checks the human-readable report.
func TestPrivProbeTable(t *testing.T) {
	kerneltest.Require(t)
	res := runVigil(t, nil, "probe")
	if res.Code != 0 {
		t.Fatalf("vigil probe: exit status %d\nstderr: %s", res.Code, res.Stderr)
	}
	for _, want := range []string{"KERNEL\n", "FEATURE  ", "HOOK  ", "tracepoint syscalls/sys_enter_getpid", "lsm_hook  "} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("vigil probe output lacks %q:\n%s", want, res.Stdout)
		}
	}
}

// TestPrivProbeNotRoot runs vigil probe as the unprivileged user nobody.
func TestPrivProbeNotRoot(t *testing.T) {
	kerneltest.Require(t)
	res := runVigil(t, &syscall.Credential{Uid: 65534, Gid: 65534}, "probe", "--json")
	if res.Code != 1 {
		t.Errorf("exit status %d, want 1", res.Code)
	}
	want := "vigil: insufficient privileges: Vigil needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN); run it as root or grant those capabilities\n"
	if res.Stderr != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", res.Stderr, want)
	}
	if res.Stdout != "" {
		t.Errorf("stdout %q, want nothing: a failed probe must not print a report", res.Stdout)
	}
}

// TestPrivProbeLeavesNothingBehind probes in this process and through the
// CLI, and checks that no BPF program, map or link, no file descriptor, no
// probe cgroup and no kprobe event is left.
func TestPrivProbeLeavesNothingBehind(t *testing.T) {
	kerneltest.Require(t)
	before := takeSnapshot(t)
	fds := bpfFDs(t)

	if _, err := kprobes.Probe(nil); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if after := bpfFDs(t); !slices.Equal(fds, after) {
		t.Errorf("file descriptors open before the probe: %v, after: %v", fds, after)
	}
	if res := runVigil(t, nil, "probe", "--json"); res.Code != 0 {
		t.Fatalf("vigil probe --json: exit status %d\nstderr: %s", res.Code, res.Stderr)
	}

	// Closed objects are freed after an RCU grace period, and other
	// packages' tests may load their own meanwhile: wait until every new
	// object is gone, or report those the probe could have made.
	var left []string
	deadline := time.Now().Add(15 * time.Second)
	for {
		left = before.leftovers(t)
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if len(left) > 0 {
		t.Errorf("probing left behind:\n  %s", strings.Join(left, "\n  "))
	}
}

// snapshot is the kernel state a probe could leak.
type snapshot struct {
	ids          map[string]map[uint32]bool // by object kind
	cgroups      map[string]bool
	kprobeEvents map[string]bool
	cgroupRoot   string
	tracefs      string
}

var bpfKinds = []struct {
	name string
	cmd  int
}{
	{"program", unix.BPF_PROG_GET_NEXT_ID},
	{"map", unix.BPF_MAP_GET_NEXT_ID},
	{"link", unix.BPF_LINK_GET_NEXT_ID},
}

func takeSnapshot(t *testing.T) *snapshot {
	t.Helper()
	s := &snapshot{ids: map[string]map[uint32]bool{}}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	s.cgroupRoot, s.tracefs = mountOfType(mounts, "cgroup2"), mountOfType(mounts, "tracefs")
	s.fill(t)
	return s
}

func (s *snapshot) fill(t *testing.T) {
	t.Helper()
	for _, k := range bpfKinds {
		ids, err := bpfIDs(k.cmd)
		if err != nil {
			t.Fatalf("list BPF %ss: %v", k.name, err)
		}
		s.ids[k.name] = ids
	}
	s.cgroups = map[string]bool{}
	if s.cgroupRoot != "" {
		dirs, _ := filepath.Glob(filepath.Join(s.cgroupRoot, "vigil-probe-*"))
		for _, d := range dirs {
			s.cgroups[d] = true
		}
	}
	s.kprobeEvents = map[string]bool{}
	if s.tracefs != "" {
		b, _ := os.ReadFile(filepath.Join(s.tracefs, "kprobe_events"))
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if l != "" {
				s.kprobeEvents[l] = true
			}
		}
	}
}

// leftovers lists what exists now and did not before, and could come from
// the probe. The probe's programs and maps are unnamed, while every object
// Vigil loads for real carries its name, so named objects of tests that run
// at the same time are not blamed on the probe.
func (s *snapshot) leftovers(t *testing.T) []string {
	t.Helper()
	now := &snapshot{ids: map[string]map[uint32]bool{}, cgroupRoot: s.cgroupRoot, tracefs: s.tracefs}
	now.fill(t)
	var out []string
	for _, k := range bpfKinds {
		for id := range now.ids[k.name] {
			if s.ids[k.name][id] {
				continue
			}
			if desc, unnamed := describeBPF(k.name, id); unnamed {
				out = append(out, desc)
			}
		}
	}
	for d := range now.cgroups {
		if !s.cgroups[d] {
			out = append(out, "cgroup "+d)
		}
	}
	for e := range now.kprobeEvents {
		if !s.kprobeEvents[e] {
			out = append(out, "kprobe event "+e)
		}
	}
	slices.Sort(out)
	return out
}

// bpfIDs lists the IDs of one kind of BPF object with the bpf syscall's
// *_GET_NEXT_ID commands.
func bpfIDs(cmd int) (map[uint32]bool, error) {
	ids := map[uint32]bool{}
	var attr struct{ start, next, openFlags uint32 }
	for {
		_, _, errno := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
		switch {
		case errno == unix.ENOENT:
			return ids, nil
		case errno != 0:
			return nil, errno
		}
		ids[attr.next] = true
		attr.start = attr.next
	}
}

// describeBPF names a BPF object and says whether it is unnamed (could be
// the probe's). An object that is already gone is not reported.
func describeBPF(kind string, id uint32) (string, bool) {
	switch kind {
	case "program":
		name, typ, ok := programName(ebpf.ProgramID(id))
		return fmt.Sprintf("program %d (%s, name %q)", id, typ, name), ok && name == ""
	case "map":
		m, err := ebpf.NewMapFromID(ebpf.MapID(id))
		if err != nil {
			return "", false
		}
		defer m.Close()
		info, err := m.Info()
		if err != nil {
			return "", false
		}
		return fmt.Sprintf("map %d (%s, name %q)", id, info.Type, info.Name), info.Name == ""
	case "link":
		l, err := link.NewFromID(link.ID(id))
		if err != nil {
			return "", false
		}
		defer l.Close()
		info, err := l.Info()
		if err != nil {
			return "", false
		}
		name, _, ok := programName(info.Program)
		return fmt.Sprintf("link %d (type %d, program %d %q)", id, info.Type, info.Program, name), ok && name == ""
	}
	return "", false
}

func programName(id ebpf.ProgramID) (name string, typ ebpf.ProgramType, ok bool) {
	p, err := ebpf.NewProgramFromID(id)
	if err != nil {
		return "", 0, false
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		return "", 0, false
	}
	return info.Name, info.Type, true
}

// bpfFDs lists this process's file descriptors that hold BPF objects or
// perf events (kprobe links), as "fd:target".
func bpfFDs(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // the fd ReadDir itself used
		}
		if strings.HasPrefix(target, "anon_inode:bpf") || target == "anon_inode:[perf_event]" {
			out = append(out, e.Name()+":"+target)
		}
	}
	slices.Sort(out)
	return out
}

// mountOfType returns the first mount point of fstype in mountinfo.
func mountOfType(mountinfo []byte, fstype string) string {
	sc := bufio.NewScanner(bytes.NewReader(mountinfo))
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, fs := strings.Fields(pre), strings.Fields(post)
		if ok && len(fields) >= 5 && len(fs) > 0 && fs[0] == fstype {
			return fields[4]
		}
	}
	return ""
}
