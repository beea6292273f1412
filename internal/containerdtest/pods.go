package containerdtest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Pod describes a pod as the kubelet would hand it to the runtime.
type Pod struct {
	Name, Namespace, UID string
	Labels               map[string]string
	Annotations          map[string]string
	// Network gives the pod its own network namespace on the test bridge
	// (and so an address); otherwise it uses the host's network.
	Network bool
}

// CgroupParent is the pod's cgroup, as the kubelet's cgroupfs driver names
// it for a best-effort pod.
func (p Pod) CgroupParent() string { return "/kubepods/besteffort/pod" + p.UID }

// RunPod creates and starts the pod's sandbox as the kubelet does: the pod
// labels plus the kubelet's own, the pod's annotations, its cgroup parent.
func (e *Env) RunPod(ctx context.Context, t testing.TB, p Pod) string {
	t.Helper()
	labels := map[string]string{
		"io.kubernetes.pod.name":      p.Name,
		"io.kubernetes.pod.namespace": p.Namespace,
		"io.kubernetes.pod.uid":       p.UID,
	}
	for k, v := range p.Labels {
		labels[k] = v
	}
	ns := runtimeapi.NamespaceMode_NODE
	if p.Network {
		ns = runtimeapi.NamespaceMode_POD
	}
	e.cgroups = append(e.cgroups, p.CgroupParent())
	cfg := e.sandboxConfig(p, labels, ns)
	r, err := e.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatalf("RunPodSandbox %s/%s: %v\n%s", p.Namespace, p.Name, err, e.Logs())
	}
	return r.PodSandboxId
}

func (e *Env) sandboxConfig(p Pod, labels map[string]string, ns runtimeapi.NamespaceMode) *runtimeapi.PodSandboxConfig {
	hostname := ""
	if ns == runtimeapi.NamespaceMode_POD {
		hostname = p.Name // a host-network pod keeps the host's name
	}
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: p.Name, Namespace: p.Namespace, Uid: p.UID},
		Hostname:     hostname,
		LogDirectory: e.Dir + "/pods/" + p.UID,
		Labels:       labels,
		Annotations:  p.Annotations,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: p.CgroupParent(),
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: ns, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD},
			},
		},
	}
}

// Container describes one container of a pod.
type Container struct {
	Name    string
	Command []string
	Args    []string
	Labels  map[string]string
}

// CreateContainer creates a container in a running pod from BusyboxImage,
// with the kubelet's labels, and returns its id.
func (e *Env) CreateContainer(ctx context.Context, t testing.TB, sandboxID string, p Pod, c Container) string {
	t.Helper()
	labels := map[string]string{
		"io.kubernetes.container.name": c.Name,
		"io.kubernetes.pod.name":       p.Name,
		"io.kubernetes.pod.namespace":  p.Namespace,
		"io.kubernetes.pod.uid":        p.UID,
	}
	for k, v := range c.Labels {
		labels[k] = v
	}
	ns := runtimeapi.NamespaceMode_NODE
	if p.Network {
		ns = runtimeapi.NamespaceMode_POD
	}
	r, err := e.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: sandboxID,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: c.Name},
			Image:    &runtimeapi.ImageSpec{Image: BusyboxImage},
			Command:  c.Command,
			Args:     c.Args,
			LogPath:  c.Name + ".log",
			Labels:   labels,
			Linux: &runtimeapi.LinuxContainerConfig{
				SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
					NamespaceOptions: &runtimeapi.NamespaceOption{Network: ns, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD},
				},
			},
		},
		SandboxConfig: e.sandboxConfig(p, nil, ns),
	})
	if err != nil {
		t.Fatalf("CreateContainer %s in %s/%s: %v\n%s", c.Name, p.Namespace, p.Name, err, e.Logs())
	}
	return r.ContainerId
}

// StartContainer starts a created container.
func (e *Env) StartContainer(ctx context.Context, t testing.TB, id string) {
	t.Helper()
	if _, err := e.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("StartContainer %s: %v\n%s", id, err, e.Logs())
	}
}

// RemoveContainer stops (immediately) and removes a container.
func (e *Env) RemoveContainer(ctx context.Context, t testing.TB, id string) {
	t.Helper()
	if _, err := e.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 0}); err != nil {
		t.Fatalf("StopContainer %s: %v", id, err)
	}
	if _, err := e.Runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("RemoveContainer %s: %v", id, err)
	}
}

// RemovePod stops and removes a pod and its containers.
func (e *Env) RemovePod(ctx context.Context, t testing.TB, sandboxID string) {
	t.Helper()
	if _, err := e.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sandboxID}); err != nil {
		t.Fatalf("StopPodSandbox %s: %v", sandboxID, err)
	}
	if _, err := e.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sandboxID}); err != nil {
		t.Fatalf("RemovePodSandbox %s: %v", sandboxID, err)
	}
}

// MainPID returns the host pid of a running container's main process.
func (e *Env) MainPID(ctx context.Context, t testing.TB, id string) int {
	t.Helper()
	deadline := time.Now().Add(Patience)
	for {
		r, err := e.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
		if err != nil {
			t.Fatalf("ContainerStatus %s: %v", id, err)
		}
		if pid, ok := verbosePID(r.Info["info"]); ok && pid > 0 {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s has no pid (state %v)", id, r.Status.GetState())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// verbosePID reads "pid" from containerd's verbose ContainerStatus info.
func verbosePID(info string) (int, bool) {
	var v struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(info), &v); err != nil {
		return 0, false
	}
	return v.Pid, true
}
