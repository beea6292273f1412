package process_test

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/vigilsec/vigil/agent/agenttest"

	"github.com/vigilsec/vigil/agent"
)

// A process in a cgroup that a Workload file names carries the workload's
// pod in its events, and a policy scoped with podSelector sees it while it
// does not see a process elsewhere.
func TestPrivWorkloadFileIdentityAndScope(t *testing.T) {
	root := agenttest.Cgroup2Root(t)
	name := fmt.Sprintf("vigil-id-%d", os.Getpid())
	cg := filepath.Join(root, name)
	agenttest.FatalIf(t, os.Mkdir(cg, 0o755))
	t.Cleanup(func() { os.Remove(cg) })

	wl := agenttest.WritePolicy(t, t.TempDir(), "workloads.yaml", fmt.Sprintf(`apiVersion: vigil.dev/v1alpha1
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
	agenttest.FatalIf(t, os.WriteFile(target, nil, 0o644))
	pol := agenttest.WritePolicy(t, t.TempDir(), "p.yaml", fmt.Sprintf(`apiVersion: cilium.io/v1alpha1
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
	h := agenttest.StartAgent(t, func(c *agent.Config) {
		c.Policies = []string{pol}
		c.Identity.WorkloadFiles = []string{wl}
		c.Identity.CRIEndpoints = []string{"none"}
		c.Identity.Kubernetes = "off"
	})
	h.WaitPolicy("web-opens")

	run := func(inCgroup bool) int {
		cmd := agenttest.HelperCmd(t, "open", target)
		if inCgroup {
			cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: agenttest.OpenDir(t, cg)}
		}
		agenttest.FatalIf(t, cmd.Run())
		return cmd.Process.Pid
	}
	in := run(true)
	exec := h.WaitFor("exec in the workload", agenttest.ExecOf(in))
	if exec.Str("process_exec.process.pod.name") != "web" || exec.Str("process_exec.process.pod.namespace") != "shop" ||
		exec.Str("process_exec.process.pod.pod_labels.app") != "web" {
		t.Errorf("exec event pod: %v", exec.Get("process_exec.process.pod"))
	}
	e := h.WaitFor("scoped policy event", agenttest.KprobeOf("process_kprobe", in, "web-opens"))
	if e.Str("process_kprobe.process.pod.name") != "web" {
		t.Errorf("policy event pod: %v", e.Get("process_kprobe.process.pod"))
	}

	out := run(false)
	h.WaitFor("exec outside the workload", agenttest.ExecOf(out))
	if _, ok := h.Find(time.Second, agenttest.KprobeOf("process_kprobe", out, "web-opens")); ok {
		t.Error("a process outside the podSelector was reported")
	}
	if p := h.All(agenttest.ExecOf(out))[0].Get("process_exec.process.pod"); p != nil {
		t.Errorf("a process outside the workload has a pod: %v", p)
	}
}
