package process_test

import (
	"context"
	"testing"

	"github.com/vigilsec/vigil/agent/agenttest"

	"github.com/vigilsec/vigil/agent"
	"github.com/vigilsec/vigil/internal/containerdtest"
	"github.com/vigilsec/vigil/internal/kerneltest"
)

// A pod created over CRI as the kubelet does: the very first exec of its
// container (racing the runtime's report of the container) comes out with
// the pod's name, namespace, labels, container name and image.
func TestPrivCRIPodEnrichment(t *testing.T) {
	kerneltest.Require(t)
	env := containerdtest.Start(t)
	h := agenttest.StartAgent(t, func(c *agent.Config) {
		c.Identity.CRIEndpoints = []string{"unix://" + env.Socket}
		c.Identity.Kubernetes = "off"
	})
	ctx := context.Background()
	pod := containerdtest.Pod{Name: "frontend", Namespace: "shop", UID: "0b7e7a3c-1111-4c0e-9f00-000000000001",
		Labels: map[string]string{"app": "web"}}
	sandbox := env.RunPod(ctx, t, pod)
	id := env.CreateContainer(ctx, t, sandbox, pod, containerdtest.Container{
		Name: "app", Command: []string{"/bin/sh", "-c", "/bin/echo started; exec /bin/sleep 30"},
	})
	env.StartContainer(ctx, t, id)
	t.Cleanup(func() { env.RemoveContainer(ctx, t, id); env.RemovePod(ctx, t, sandbox) })

	e := h.WaitFor("exec in the container", func(e agenttest.Event) bool {
		return e.Get("process_exec") != nil && e.Str("process_exec.process.pod.container.name") == "app"
	})
	p := "process_exec.process.pod."
	if e.Str(p+"name") != "frontend" || e.Str(p+"namespace") != "shop" || e.Str(p+"pod_labels.app") != "web" ||
		e.Str(p+"container.image.name") == "" || e.Str(p+"container.id") != id {
		t.Errorf("pod of the first exec: %v (container %s)", e.Get("process_exec.process.pod"), id)
	}
}
