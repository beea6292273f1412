package cri

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vigilsec/vigil/identity/source"
)

// ErrNotSupported means the runtime does not offer a call (container events
// on containerd before 1.7, for instance).
var ErrNotSupported = errors.New("not supported by this runtime")

// DefaultEndpoints are the sockets tried, in order, when none is configured.
var DefaultEndpoints = []string{
	"/run/containerd/containerd.sock",
	"/run/crio/crio.sock",
	"/var/run/crio/crio.sock",
	"/run/k3s/containerd/containerd.sock",
	"/var/snap/microk8s/common/run/containerd.sock",
	"/run/cri-dockerd.sock",
}

// Detect returns the default endpoints whose socket exists, prefixed with
// root (for an agent that sees the host below /host, for instance; "" or "/"
// for none).
func Detect(root string) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range DefaultEndpoints {
		full := strings.TrimSuffix(root, "/") + p
		fi, err := os.Stat(full)
		if err != nil || fi.Mode()&os.ModeSocket == 0 {
			continue
		}
		// /var/run is usually a link to /run: report one socket once.
		key := full
		if r, err := filepath.EvalSymlinks(full); err == nil {
			key = r
		}
		if !seen[key] {
			seen[key] = true
			out = append(out, full)
		}
	}
	return out
}

// Sandbox is a pod sandbox as the runtime reports it.
type Sandbox struct {
	ID                   string
	Name, Namespace, UID string
	Labels, Annotations  map[string]string
	// IPs are known from SandboxStatus only; listings leave them empty.
	IPs       []netip.Addr
	Ready     bool
	CreatedAt time.Time
}

// ContainerState is a container's life-cycle state.
type ContainerState int

const (
	StateUnknown ContainerState = iota
	StateCreated
	StateRunning
	StateExited
)

func (s ContainerState) String() string {
	return [...]string{"unknown", "created", "running", "exited"}[s]
}

// Container is a container as the runtime reports it.
type Container struct {
	ID, SandboxID string
	Name          string
	// Image is the image's name (a tag or digest reference) from
	// ContainerStatus; listings give the reference the container was
	// created with, often the image id.
	Image string
	// ImageRef is the image's id or repo digest.
	ImageRef  string
	State     ContainerState
	CreatedAt time.Time
	// StartedAt is known from ContainerStatus only.
	StartedAt time.Time
	Labels    map[string]string
}

// EventType is the kind of a container event.
type EventType int

const (
	EventCreated EventType = iota
	EventStarted
	EventStopped
	EventDeleted
)

// Event is a container life-cycle event.
type Event struct {
	Type        EventType
	ContainerID string
	SandboxID   string
}

// RuntimeClient is what Vigil needs from a container runtime. Every call
// takes a context; errors match source.ErrNotFound for unknown ids and
// ErrNotSupported for calls the runtime lacks.
type RuntimeClient interface {
	// Version names the runtime: "containerd 1.6.20".
	Version(ctx context.Context) (string, error)
	ListSandboxes(ctx context.Context) ([]Sandbox, error)
	SandboxStatus(ctx context.Context, id string) (Sandbox, error)
	ListContainers(ctx context.Context) ([]Container, error)
	ContainerStatus(ctx context.Context, id string) (Container, error)
	// Events streams container events until ctx ends or the stream
	// breaks; then the channel is closed and the function returned with
	// it says why (nil when ctx ended).
	Events(ctx context.Context) (<-chan Event, func() error, error)
	Close() error
}

// Client is a RuntimeClient over a CRI socket.
type Client struct {
	endpoint string
	conn     *grpc.ClientConn
	rt       runtimeapi.RuntimeServiceClient
}

var _ RuntimeClient = (*Client)(nil)

// Dial returns a client of the runtime at endpoint, a socket path or a
// unix:// URL. It does not connect: the first call does, and fails with a
// hint when nothing listens there.
func Dial(endpoint string) (*Client, error) {
	target := endpoint
	if !strings.HasPrefix(target, "unix://") {
		if !strings.HasPrefix(target, "/") {
			return nil, fmt.Errorf("CRI endpoint %q: want a socket path or unix:///path", endpoint)
		}
		target = "unix://" + target
	}
	conn, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
	if err != nil {
		return nil, fmt.Errorf("CRI endpoint %q: %w", endpoint, err)
	}
	return &Client{endpoint: endpoint, conn: conn, rt: runtimeapi.NewRuntimeServiceClient(conn)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// wrap turns a gRPC status into our sentinels, with the operation and
// endpoint.
func (c *Client) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	switch status.Code(err) {
	case codes.NotFound:
		return fmt.Errorf("%s: %w (%v)", op, source.ErrNotFound, status.Convert(err).Message())
	case codes.Unimplemented:
		return fmt.Errorf("%s: %w", op, ErrNotSupported)
	case codes.Unavailable:
		return fmt.Errorf("%s on %s: %w (is the runtime running, and the socket mounted?)", op, c.endpoint, err)
	}
	return fmt.Errorf("%s on %s: %w", op, c.endpoint, err)
}

func (c *Client) Version(ctx context.Context) (string, error) {
	v, err := c.rt.Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil {
		return "", c.wrap("CRI version", err)
	}
	return v.RuntimeName + " " + v.RuntimeVersion, nil
}

func (c *Client) ListSandboxes(ctx context.Context) ([]Sandbox, error) {
	r, err := c.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return nil, c.wrap("list pod sandboxes", err)
	}
	out := make([]Sandbox, 0, len(r.Items))
	for _, s := range r.Items {
		out = append(out, Sandbox{
			ID: s.Id, Name: s.GetMetadata().GetName(), Namespace: s.GetMetadata().GetNamespace(), UID: s.GetMetadata().GetUid(),
			Labels: s.Labels, Annotations: s.Annotations,
			Ready: s.State == runtimeapi.PodSandboxState_SANDBOX_READY, CreatedAt: nanos(s.CreatedAt),
		})
	}
	return out, nil
}

func (c *Client) SandboxStatus(ctx context.Context, id string) (Sandbox, error) {
	r, err := c.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
	if err != nil {
		return Sandbox{}, c.wrap("pod sandbox status "+short(id), err)
	}
	s := r.GetStatus()
	if s == nil {
		return Sandbox{}, fmt.Errorf("pod sandbox status %s: empty answer", short(id))
	}
	out := Sandbox{
		ID: s.Id, Name: s.GetMetadata().GetName(), Namespace: s.GetMetadata().GetNamespace(), UID: s.GetMetadata().GetUid(),
		Labels: s.Labels, Annotations: s.Annotations,
		Ready: s.State == runtimeapi.PodSandboxState_SANDBOX_READY, CreatedAt: nanos(s.CreatedAt),
	}
	if n := s.GetNetwork(); n != nil {
		out.IPs = appendIP(out.IPs, n.Ip)
		for _, a := range n.AdditionalIps {
			out.IPs = appendIP(out.IPs, a.GetIp())
		}
	}
	return out, nil
}

func appendIP(ips []netip.Addr, s string) []netip.Addr {
	if a, err := netip.ParseAddr(s); err == nil {
		return append(ips, a.Unmap())
	}
	return ips
}

func (c *Client) ListContainers(ctx context.Context) ([]Container, error) {
	r, err := c.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return nil, c.wrap("list containers", err)
	}
	out := make([]Container, 0, len(r.Containers))
	for _, k := range r.Containers {
		out = append(out, Container{
			ID: k.Id, SandboxID: k.PodSandboxId, Name: k.GetMetadata().GetName(),
			Image: k.GetImage().GetImage(), ImageRef: k.ImageRef,
			State: state(k.State), CreatedAt: nanos(k.CreatedAt), Labels: k.Labels,
		})
	}
	return out, nil
}

func (c *Client) ContainerStatus(ctx context.Context, id string) (Container, error) {
	r, err := c.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		return Container{}, c.wrap("container status "+short(id), err)
	}
	s := r.GetStatus()
	if s == nil {
		return Container{}, fmt.Errorf("container status %s: empty answer", short(id))
	}
	// The status has no sandbox id; a listing filtered on the id has.
	l, err := c.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{Id: id}})
	if err != nil {
		return Container{}, c.wrap("list container "+short(id), err)
	}
	sandbox := ""
	for _, k := range l.Containers {
		if k.Id == s.Id {
			sandbox = k.PodSandboxId
		}
	}
	return Container{
		ID: s.Id, SandboxID: sandbox, Name: s.GetMetadata().GetName(),
		Image: s.GetImage().GetImage(), ImageRef: s.ImageRef,
		State: state(s.State), CreatedAt: nanos(s.CreatedAt), StartedAt: nanos(s.StartedAt), Labels: s.Labels,
	}, nil
}

// Events starts the runtime's container event stream. Whether the runtime
// implements it is only known from the stream's first answer: a runtime
// without it (containerd 1.6) closes the channel at once and the returned
// function then gives an error matching ErrNotSupported.
func (c *Client) Events(ctx context.Context) (<-chan Event, func() error, error) {
	stream, err := c.rt.GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		return nil, nil, c.wrap("container events", err)
	}
	ch := make(chan Event, 64)
	var streamErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		for {
			ev, err := stream.Recv()
			if err != nil {
				if ctx.Err() == nil {
					streamErr = c.wrap("container events", err)
				}
				return
			}
			e := Event{ContainerID: ev.ContainerId, SandboxID: ev.GetPodSandboxStatus().GetId()}
			switch ev.ContainerEventType {
			case runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT:
				e.Type = EventCreated
			case runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT:
				e.Type = EventStarted
			case runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT:
				e.Type = EventStopped
			case runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT:
				e.Type = EventDeleted
			}
			select {
			case ch <- e:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, func() error { <-done; return streamErr }, nil
}

func state(s runtimeapi.ContainerState) ContainerState {
	switch s {
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		return StateCreated
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return StateRunning
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		return StateExited
	}
	return StateUnknown
}

func nanos(n int64) time.Time {
	if n <= 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// short abbreviates a container id for messages, as docker does.
func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
