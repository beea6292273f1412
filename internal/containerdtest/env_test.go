package containerdtest

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/vigilsec/vigil/identity/cgroup"
	"github.com/vigilsec/vigil/internal/kerneltest"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestPrivEnv checks the environment itself: a pod with an address and a
// container started the kubelet's way runs its process in the container's
// cgroup, below the pod's, and everything is gone after removal.
func TestPrivEnv(t *testing.T) {
	kerneltest.Require(t)
	e := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), Patience)
	defer cancel()
	p := Pod{Name: "web", Namespace: "shop", UID: "11111111-2222-3333-4444-555555555555", Labels: map[string]string{"app": "web"}, Network: true}
	sb := e.RunPod(ctx, t, p)
	id := e.CreateContainer(ctx, t, sb, p, Container{Name: "main", Command: []string{"/bin/sleep", "1000"}})
	e.StartContainer(ctx, t, id)
	pid := e.MainPID(ctx, t, id)
	path, err := cgroup.ProcPath("/proc", pid)
	if err != nil {
		t.Fatal(err)
	}
	info := cgroup.Parse(path)
	if info.ContainerID != id || info.PodUID != p.UID {
		t.Errorf("cgroup %s parses to %+v, want container %s of pod %s", path, info, id, p.UID)
	}
	st, err := e.Runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb})
	if err != nil {
		t.Fatal(err)
	}
	if ip := st.Status.GetNetwork().GetIp(); !strings.HasPrefix(ip, "10.213.") {
		t.Errorf("pod address %q, want one from the test bridge", ip)
	}
	mp, err := cgroup.Mountpoint()
	if err != nil {
		t.Fatal(err)
	}
	e.RemovePod(ctx, t, sb)
	if _, err := os.Stat(mp + path); !os.IsNotExist(err) {
		t.Errorf("container cgroup %s still there after removal: %v", path, err)
	}
}
