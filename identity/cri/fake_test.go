package cri

import (
	"context"
	"net"
	"path/filepath"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeRuntime is a CRI runtime service holding fixed pods, for tests
// without a real runtime. failWith makes every call fail with that code;
// events, when set, makes GetContainerEvents stream from it (otherwise it
// is unimplemented, as on containerd 1.6).
type fakeRuntime struct {
	runtimeapi.UnimplementedRuntimeServiceServer

	mu         sync.Mutex
	sandboxes  []*runtimeapi.PodSandboxStatus
	containers []*runtimeapi.ContainerStatus
	sandboxOf  map[string]string
	failWith   codes.Code
	events     chan *runtimeapi.ContainerEventResponse
	calls      map[string]int
}

func (f *fakeRuntime) fail(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[op]++
	if f.failWith != codes.OK {
		return status.Error(f.failWith, "the runtime is broken")
	}
	return nil
}

func (f *fakeRuntime) setFail(c codes.Code) {
	f.mu.Lock()
	f.failWith = c
	f.mu.Unlock()
}

func (f *fakeRuntime) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

func (f *fakeRuntime) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	if err := f.fail("Version"); err != nil {
		return nil, err
	}
	return &runtimeapi.VersionResponse{RuntimeName: "fake", RuntimeVersion: "1.0"}, nil
}

func (f *fakeRuntime) ListPodSandbox(context.Context, *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	if err := f.fail("ListPodSandbox"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &runtimeapi.ListPodSandboxResponse{}
	for _, s := range f.sandboxes {
		out.Items = append(out.Items, &runtimeapi.PodSandbox{Id: s.Id, Metadata: s.Metadata, State: s.State, CreatedAt: s.CreatedAt, Labels: s.Labels, Annotations: s.Annotations})
	}
	return out, nil
}

func (f *fakeRuntime) PodSandboxStatus(_ context.Context, r *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	if err := f.fail("PodSandboxStatus"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.sandboxes {
		if s.Id == r.PodSandboxId {
			return &runtimeapi.PodSandboxStatusResponse{Status: s}, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "an error occurred when try to find sandbox %q: not found", r.PodSandboxId)
}

func (f *fakeRuntime) ListContainers(_ context.Context, r *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	if err := f.fail("ListContainers"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &runtimeapi.ListContainersResponse{}
	for _, c := range f.containers {
		if id := r.GetFilter().GetId(); id != "" && id != c.Id {
			continue
		}
		out.Containers = append(out.Containers, &runtimeapi.Container{
			Id: c.Id, PodSandboxId: f.sandboxOf[c.Id], Metadata: c.Metadata,
			Image: &runtimeapi.ImageSpec{Image: c.ImageRef}, ImageRef: c.ImageRef,
			State: c.State, CreatedAt: c.CreatedAt, Labels: c.Labels,
		})
	}
	return out, nil
}

func (f *fakeRuntime) ContainerStatus(_ context.Context, r *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	if err := f.fail("ContainerStatus"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.containers {
		if c.Id == r.ContainerId {
			return &runtimeapi.ContainerStatusResponse{Status: c}, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "an error occurred when try to find container %q: not found", r.ContainerId)
}

func (f *fakeRuntime) GetContainerEvents(_ *runtimeapi.GetEventsRequest, s grpc.ServerStreamingServer[runtimeapi.ContainerEventResponse]) error {
	if f.events == nil {
		return status.Error(codes.Unimplemented, "method GetContainerEvents not implemented")
	}
	for {
		select {
		case <-s.Context().Done():
			return nil
		case ev := <-f.events:
			if err := s.Send(ev); err != nil {
				return err
			}
		}
	}
}

// add puts a pod with one container in the fake runtime.
func (f *fakeRuntime) add(p fixture) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sandboxOf == nil {
		f.sandboxOf = map[string]string{}
	}
	labels := map[string]string{"io.kubernetes.pod.name": p.pod, "io.kubernetes.pod.namespace": p.namespace, "io.kubernetes.pod.uid": p.uid}
	for k, v := range p.labels {
		labels[k] = v
	}
	f.sandboxes = append(f.sandboxes, &runtimeapi.PodSandboxStatus{
		Id: p.sandboxID, Metadata: &runtimeapi.PodSandboxMetadata{Name: p.pod, Namespace: p.namespace, Uid: p.uid},
		State: runtimeapi.PodSandboxState_SANDBOX_READY, CreatedAt: 1_000_000_000, Labels: labels,
		Network: &runtimeapi.PodSandboxNetworkStatus{Ip: p.ip},
	})
	f.containers = append(f.containers, &runtimeapi.ContainerStatus{
		Id: p.containerID, Metadata: &runtimeapi.ContainerMetadata{Name: p.container},
		State: runtimeapi.ContainerState_CONTAINER_RUNNING, CreatedAt: 2_000_000_000, StartedAt: 3_000_000_000,
		Image: &runtimeapi.ImageSpec{Image: p.image}, ImageRef: "sha256:" + p.containerID,
		Labels: map[string]string{"io.kubernetes.container.name": p.container},
	})
	f.sandboxOf[p.containerID] = p.sandboxID
}

// serve runs the fake on a unix socket and returns its path.
func serve(t *testing.T, f *fakeRuntime) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "cri.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(s, f)
	go s.Serve(l)
	t.Cleanup(s.Stop)
	return sock
}
