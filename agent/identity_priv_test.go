package agent_test

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/vigilsec/vigil/agent"
)

// A process in a cgroup that a Workload file names carries the workload's
// pod in its events, and a policy scoped with podSelector sees it while it
// does not see a process elsewhere.
func TestPrivWorkloadFileIdentityAndScope(t *testing.T) {
	root := cgroup2Root(t)
	name := fmt.Sprintf("vigil-id-%d", os.Getpid())
	cg := filepath.Join(root, name)
	fatalIf(t, os.Mkdir(cg, 0o755))
	t.Cleanup(func() { os.Remove(cg) })

	wl := writePolicy(t, t.TempDir(), "workloads.yaml", fmt.Sprintf(`apiVersion: vigil.dev/v1alpha1
kind: Workload
metadata:
  name: web
  namespace: shop
  labels: {app: web, tier: front}
spec:
  cgroupPath: /%s
`, name))
	dir := t.TempDir()
	target := filepath.Join(dir, "f")
	fatalIf(t, os.WriteFile(target, nil, 0o644))
	pol := writePolicy(t, t.TempDir(), "p.yaml", fmt.Sprintf(`apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: web-opens
spec:
  podSelector:
    matchLabels: {app: web}
  kprobes:
  - call: sys_openat
    syscall: true
    args:
    - index: 1
      type: string
    selectors:
    - matchArgs:
      - index: 1
        operator: Equal
        values: ["%s"]
`, target))
	h := startAgent(t, func(c *agent.Config) {
		c.Policies = []string{pol}
		c.Identity.WorkloadFiles = []string{wl}
		c.Identity.CRIEndpoints = []string{"none"}
		c.Identity.Kubernetes = "off"
	})
	h.waitPolicy("web-opens")

	run := func(inCgroup bool) int {
		cmd := helperCmd(t, "open", target)
		if inCgroup {
			cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: openDir(t, cg)}
		}
		fatalIf(t, cmd.Run())
		return cmd.Process.Pid
	}
	in := run(true)
	exec := h.waitFor("exec in the workload", execOf(in))
	if exec.str("process_exec.process.pod.name") != "web" || exec.str("process_exec.process.pod.namespace") != "shop" ||
		exec.str("process_exec.process.pod.pod_labels.app") != "web" {
		t.Errorf("exec event pod: %v", exec.get("process_exec.process.pod"))
	}
	e := h.waitFor("scoped policy event", kprobeOf("process_kprobe", in, "web-opens"))
	if e.str("process_kprobe.process.pod.name") != "web" {
		t.Errorf("policy event pod: %v", e.get("process_kprobe.process.pod"))
	}

	out := run(false)
	h.waitFor("exec outside the workload", execOf(out))
	if _, ok := h.find(time.Second, kprobeOf("process_kprobe", out, "web-opens")); ok {
		t.Error("a process outside the podSelector was reported")
	}
	if p := h.all(execOf(out))[0].get("process_exec.process.pod"); p != nil {
		t.Errorf("a process outside the workload has a pod: %v", p)
	}
}
