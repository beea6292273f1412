package kerneltest

import (
	"os"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/kprobes"
)

// EnvPrivileged enables privileged tests when set to 1. The host and VM test
// tiers set it; plain `go test ./...` leaves it unset.
const EnvPrivileged = "VIGIL_PRIVILEGED"

// Require skips t unless privileged tests are enabled, and fails it when they
// are enabled but the process is not root.
func Require(t testing.TB) {
	t.Helper()
	if os.Getenv(EnvPrivileged) != "1" {
		t.Skip("privileged test: set " + EnvPrivileged + "=1 and run as root (make test-host)")
	}
	if os.Geteuid() != 0 {
		t.Fatal(EnvPrivileged + "=1 but not running as root")
	}
}

var (
	probeOnce sync.Once
	probed    *kprobes.Features
	probeErr  error
)

// Features probes the running kernel once per test binary.
func Features(t testing.TB) *kprobes.Features {
	t.Helper()
	Require(t)
	probeOnce.Do(func() { probed, probeErr = kprobes.Probe(nil) })
	if probeErr != nil {
		t.Fatalf("probe kernel: %v", probeErr)
	}
	return probed
}

// SkipIfNotSupported skips t when the running kernel lacks feat, with the
// probe's reason. On one of our known test kernels it fails instead when the
// kernel is expected to have the feature, so a broken probe or loader cannot
// turn into a silent skip.
func SkipIfNotSupported(t testing.TB, feat kprobes.Feature) {
	t.Helper()
	f := Features(t)
	if f.Has(feat) {
		return
	}
	if k, ok := Known(); ok {
		if want, listed := k.Features[feat]; listed && want {
			t.Fatalf("%s must work on %s but the probe says: %s", feat, k.Name, f.Results[feat].Error)
		}
	}
	Skip(t, "kernel lacks %s: %s", feat, f.Results[feat].Error)
}

// KnownKernel is one of the kernels our test tiers run on, with the features
// it must and must not have.
type KnownKernel struct {
	Name     string
	Features map[kprobes.Feature]bool
}

var always = []kprobes.Feature{
	kprobes.FeatureTracepoint, kprobes.FeatureTpBTF, kprobes.FeatureRawTracepoint,
	kprobes.FeatureCgroupConnect4, kprobes.FeatureCgroupSendmsg4, kprobes.FeatureCgroupSKB,
	kprobes.FeatureRingbuf, kprobes.FeatureSendSignal, kprobes.FeatureBPFStats,
	kprobes.FeatureUprobe,
}

// vmFeatures work on both Debian cloud kernels. fmod_ret is limited to
// security_* functions there: they are built without
// CONFIG_FUNCTION_ERROR_INJECTION, so syscalls cannot be modified.
var vmFeatures = []kprobes.Feature{
	kprobes.FeatureKprobe, kprobes.FeatureKretprobe, kprobes.FeatureFentry, kprobes.FeatureFexit,
	kprobes.FeatureFmodRet, kprobes.FeatureLSM,
}

func set(yes []kprobes.Feature, no ...kprobes.Feature) map[kprobes.Feature]bool {
	m := map[kprobes.Feature]bool{}
	for _, f := range always {
		m[f] = true
	}
	for _, f := range yes {
		m[f] = true
	}
	for _, f := range no {
		m[f] = false
	}
	return m
}

// Known returns the expectations for the running kernel when it is one of our
// test kernels: the host's 6.18 or Debian's 6.1 and 6.12 cloud kernels.
func Known() (KnownKernel, bool) {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return KnownKernel{}, false
	}
	return knownByRelease(unix.ByteSliceToString(uts.Release[:]))
}

// hostKernel is the name of the host tier's kernel.
const hostKernel = "host 6.18"

func knownByRelease(rel string) (KnownKernel, bool) {
	switch {
	case strings.HasPrefix(rel, "6.18.") && strings.Contains(rel, "-fc-"):
		return KnownKernel{Name: hostKernel, Features: set([]kprobes.Feature{kprobes.FeatureUprobeMulti},
			kprobes.FeatureKprobe, kprobes.FeatureKretprobe, kprobes.FeatureKprobeMulti,
			kprobes.FeatureFentry, kprobes.FeatureFexit, kprobes.FeatureFmodRet,
			kprobes.FeatureFmodRetSyscall, kprobes.FeatureLSM, kprobes.FeatureOverrideReturn)}, true
	case strings.HasPrefix(rel, "6.1.") && strings.HasSuffix(rel, "-cloud-amd64"):
		return KnownKernel{Name: "Debian 6.1 cloud", Features: set(vmFeatures,
			kprobes.FeatureKprobeMulti, kprobes.FeatureOverrideReturn, kprobes.FeatureFmodRetSyscall, kprobes.FeatureUprobeMulti)}, true
	case strings.HasPrefix(rel, "6.12.") && strings.HasSuffix(rel, "-cloud-amd64"):
		return KnownKernel{Name: "Debian 6.12 cloud", Features: set(append(vmFeatures, kprobes.FeatureKprobeMulti, kprobes.FeatureUprobeMulti),
			kprobes.FeatureOverrideReturn, kprobes.FeatureFmodRetSyscall)}, true
	}
	return KnownKernel{}, false
}
