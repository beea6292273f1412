package cri

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/identity/source"
	"github.com/vigilsec/vigil/internal/containerdtest"
	"github.com/vigilsec/vigil/internal/kerneltest"
)

// fixture is one pod with one running container that a runtime holds.
type fixture struct {
	sandboxID, containerID string
	pod, namespace, uid    string
	labels                 map[string]string
	container, image       string
	ip                     string // "" for host network
	eventsMayBeUnsupported bool
}

// contract is what every RuntimeClient must do, whatever the runtime.
func contract(t *testing.T, c RuntimeClient, fx fixture) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t.Run("Version", func(t *testing.T) {
		v, err := c.Version(ctx)
		if err != nil || strings.TrimSpace(v) == "" {
			t.Errorf("Version = %q, %v", v, err)
		}
	})
	t.Run("ListSandboxes", func(t *testing.T) {
		sbs, err := c.ListSandboxes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sbs {
			if s.ID == fx.sandboxID {
				if s.Name != fx.pod || s.Namespace != fx.namespace || s.UID != fx.uid || !s.Ready {
					t.Errorf("sandbox %+v, want pod %s/%s uid %s, ready", s, fx.namespace, fx.pod, fx.uid)
				}
				for k, v := range fx.labels {
					if s.Labels[k] != v {
						t.Errorf("sandbox label %s = %q, want %q", k, s.Labels[k], v)
					}
				}
				return
			}
		}
		t.Errorf("sandbox %s not listed among %d", fx.sandboxID, len(sbs))
	})
	t.Run("SandboxStatus", func(t *testing.T) {
		s, err := c.SandboxStatus(ctx, fx.sandboxID)
		if err != nil {
			t.Fatal(err)
		}
		if s.Name != fx.pod || s.UID != fx.uid {
			t.Errorf("status %+v", s)
		}
		if fx.ip != "" {
			if len(s.IPs) == 0 || !strings.HasPrefix(s.IPs[0].String(), fx.ip) {
				t.Errorf("sandbox addresses %v, want one starting with %s", s.IPs, fx.ip)
			}
		}
	})
	t.Run("ListContainers", func(t *testing.T) {
		cs, err := c.ListContainers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range cs {
			if k.ID == fx.containerID {
				if k.SandboxID != fx.sandboxID || k.Name != fx.container || k.State != StateRunning || k.CreatedAt.IsZero() {
					t.Errorf("container %+v", k)
				}
				return
			}
		}
		t.Errorf("container %s not listed", fx.containerID)
	})
	t.Run("ContainerStatus", func(t *testing.T) {
		k, err := c.ContainerStatus(ctx, fx.containerID)
		if err != nil {
			t.Fatal(err)
		}
		if k.SandboxID != fx.sandboxID || k.Name != fx.container || k.Image != fx.image || k.ImageRef == "" || k.StartedAt.IsZero() || k.State != StateRunning {
			t.Errorf("status %+v, want sandbox %s, name %s, image %s, an image ref and a start time", k, fx.sandboxID, fx.container, fx.image)
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		const missing = "0000000000000000000000000000000000000000000000000000000000000000"
		if _, err := c.ContainerStatus(ctx, missing); !errors.Is(err, source.ErrNotFound) {
			t.Errorf("ContainerStatus of an unknown id: %v, want ErrNotFound", err)
		}
		if _, err := c.SandboxStatus(ctx, missing); !errors.Is(err, source.ErrNotFound) {
			t.Errorf("SandboxStatus of an unknown id: %v, want ErrNotFound", err)
		}
	})
	t.Run("Events", func(t *testing.T) {
		ectx, ecancel := context.WithCancel(ctx)
		ch, errf, err := c.Events(ectx)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case _, ok := <-ch:
			if !ok {
				if err := errf(); !errors.Is(err, ErrNotSupported) {
					t.Errorf("event stream ended with %v, want ErrNotSupported", err)
				}
				if !fx.eventsMayBeUnsupported {
					t.Error("runtime without container events")
				}
			}
		case <-time.After(500 * time.Millisecond):
			// A stream that works and has nothing to say yet.
		}
		ecancel()
		for range ch {
		}
		if err := errf(); err != nil && !errors.Is(err, ErrNotSupported) {
			t.Errorf("stream error after cancel: %v", err)
		}
	})
}

var fakeFixture = fixture{
	sandboxID:   "1111111111111111111111111111111111111111111111111111111111111111",
	containerID: "2222222222222222222222222222222222222222222222222222222222222222",
	pod:         "web-0", namespace: "shop", uid: "0b6f3c2e-5a41-4d8e-9b7a-2c1d3e4f5a6b",
	labels: map[string]string{"app": "web"}, container: "nginx", image: "docker.io/library/nginx:1.27",
	ip: "10.1.2.3", eventsMayBeUnsupported: true,
}

func TestContractFake(t *testing.T) {
	f := &fakeRuntime{}
	f.add(fakeFixture)
	c, err := Dial(serve(t, f))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	contract(t, c, fakeFixture)
}

// TestPrivContractContainerd runs the contract against Debian's containerd
// with a pod created as the kubelet creates it.
func TestPrivContractContainerd(t *testing.T) {
	kerneltest.Require(t)
	e := containerdtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), containerdtest.Patience)
	defer cancel()
	p := containerdtest.Pod{Name: "web-0", Namespace: "shop", UID: "0b6f3c2e-5a41-4d8e-9b7a-2c1d3e4f5a6b",
		Labels: map[string]string{"app": "web"}, Network: true}
	sb := e.RunPod(ctx, t, p)
	id := e.CreateContainer(ctx, t, sb, p, containerdtest.Container{Name: "nginx", Command: []string{"/bin/sleep", "600"}})
	e.StartContainer(ctx, t, id)
	c, err := Dial("unix://" + e.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	contract(t, c, fixture{sandboxID: sb, containerID: id, pod: p.Name, namespace: p.Namespace, uid: p.UID,
		labels: p.Labels, container: "nginx", image: containerdtest.BusyboxImage, ip: "10.213.",
		// containerd 1.6 has no GetContainerEvents (1.7 does).
		eventsMayBeUnsupported: true})
}
