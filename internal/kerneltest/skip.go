package kerneltest

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// OnHost reports whether the test runs in the host tier: privileged, on the
// machine itself rather than in one of the test VMs (whose initramfs holds
// busybox, the test binary and, for tests that start containers, the
// container runtime: no other host program).
func OnHost() bool {
	if os.Getenv(EnvPrivileged) != "1" {
		return false
	}
	k, ok := Known()
	return !ok || k.Name == hostKernel
}

// NeedTool returns the path of the program name. The host tier's setup
// (scripts/setup-host.sh) installs every program the tests use, so there a
// missing one fails the test; elsewhere (the VMs, unprivileged runs) the
// test skips, saying which program it lacks.
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if OnHost() {
		t.Fatalf("%s is not installed, but the host tier's setup installs it (run scripts/setup-host.sh): %v", name, err)
	}
	Skip(t, "needs %s, which this tier does not have", name)
	return ""
}

// Skip skips t for a reason of the machine or the kernel it runs on. Every
// test that skips for such a reason goes through here or through
// SkipIfNotSupported, so that a skip always says why in the same form, and
// setting VIGIL_NO_SKIP=1 turns every one of them into a failure (to check
// that a tier really runs everything it should).
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(EnvNoSkip) == "1" {
		t.Fatalf("would skip (%s=1): %s", EnvNoSkip, msg)
	}
	t.Skip(msg)
}

// EnvNoSkip makes Skip fail instead of skipping when set to 1.
const EnvNoSkip = "VIGIL_NO_SKIP"
