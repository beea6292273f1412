package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/vigilsec/vigil/internal/kerneltest"
	"github.com/vigilsec/vigil/kprobes"
)

// envAsDemo makes the test binary act as the demo program, so that the
// script can run without a Go toolchain (as in the VM test tier).
const envAsDemo = "VIGIL_DEATHSTAR_AS_DEMO"

func TestMain(m *testing.M) {
	if os.Getenv(envAsDemo) == "1" {
		os.Exit(run(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// TestPrivDeathStarDemo runs the demo script: the tiefighter (org=empire)
// lands, the xwing (org=alliance) is dropped, and the drop is reported with
// the policy that made it.
func TestPrivDeathStarDemo(t *testing.T) {
	out := runDemo(t)
	for _, want := range []string{
		"enforcing CiliumNetworkPolicy default/rule1",
		"tiefighter: Ship landed",
		"xwing: landing failed: no answer (dropped)",
		"DENIED ingress default/xwing -> default/deathstar 80/TCP by default deny ingress of CiliumNetworkPolicy default/rule1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "DENIED ingress default/tiefighter") {
		t.Errorf("the tiefighter was dropped:\n%s", out)
	}
}

// TestPrivDeathStarL7Demo runs the demo with Cilium's L7 policy: the
// tiefighter lands but is refused at the exhaust port with Cilium's 403,
// the xwing is still dropped, and the proxy prints both requests.
func TestPrivDeathStarL7Demo(t *testing.T) {
	out := runDemo(t, "l7")
	for _, want := range []string{
		"enforcing CiliumNetworkPolicy default/rule1",
		"tiefighter: Ship landed",
		"tiefighter: Access denied",
		"xwing: landing failed: no answer (dropped)",
		"FORWARDED POST http://198.18.10.1:80/v1/request-landing default/tiefighter -> default/deathstar 200 by CiliumNetworkPolicy default/rule1",
		"DROPPED PUT http://198.18.10.1:80/v1/exhaust-port default/tiefighter -> default/deathstar 403 by CiliumNetworkPolicy default/rule1",
		"DENIED ingress default/xwing -> default/deathstar 80/TCP by default deny ingress of CiliumNetworkPolicy default/rule1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Panic: deathstar exploded") {
		t.Errorf("the exhaust port was reached:\n%s", out)
	}
}

// runDemo runs demo.sh with args and returns its output.
func runDemo(t *testing.T, args ...string) string {
	kerneltest.Require(t)
	kerneltest.SkipIfNotSupported(t, kprobes.FeatureCgroupConnect4)
	kerneltest.SkipIfNotSupported(t, kprobes.FeatureCgroupSKB)
	// The script is for people: it uses iproute2 and util-linux's nsenter,
	// which the busybox test VMs lack.
	if err := exec.Command("ip", "netns", "list").Run(); err != nil {
		if kerneltest.OnHost() {
			t.Fatalf("demo.sh needs iproute2 with netns support, which the host tier's setup installs: %v", err)
		}
		kerneltest.Skip(t, "demo.sh needs iproute2 with netns support: %v", err)
	}
	kerneltest.NeedTool(t, "nsenter")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", append([]string{"../demo.sh"}, args...)...)
	cmd.Env = append(os.Environ(), envAsDemo+"=1", "DEMO_BIN="+self)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo.sh: %v\n%s", err, out)
	}
	return string(out)
}
