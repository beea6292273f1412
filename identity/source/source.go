package source

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// ErrNotFound means a source does not know the container it was asked for.
var ErrNotFound = errors.New("not found")

// Pod is what one source knows of one pod or standalone workload.
type Pod struct {
	// Key identifies the pod within its source; stable for the pod's life.
	// Sources use the pod uid when there is one.
	Key string
	// UID is the Kubernetes pod uid; empty for standalone workloads.
	UID       string
	Name      string
	Namespace string
	// Labels are the pod's own labels (not the namespace's).
	Labels map[string]string
	// NamespaceLabels are the labels of the pod's namespace, when known.
	NamespaceLabels map[string]string
	// Workload and WorkloadKind name the controller that owns the pod
	// (a Deployment rather than its ReplicaSet, a CronJob rather than its
	// Job), or the pod itself when it has no owner.
	Workload, WorkloadKind string
	ServiceAccount         string
	IPs                    []netip.Addr
	Ports                  []Port
	// SandboxID is the id of the pod's sandbox (pause) container.
	SandboxID string
	// CgroupPath, for standalone workloads, is the cgroup v2 path whose
	// processes (and those of its descendants) belong to the workload.
	CgroupPath string
	Containers []Container
}

// Port is a named container port.
type Port struct {
	Name     string
	Protocol string // TCP, UDP or SCTP
	Port     uint16
}

// Container is one container of a pod.
type Container struct {
	// ID is the runtime's container id (64 hex digits for containerd,
	// CRI-O and docker), without a "containerd://" scheme.
	ID        string
	Name      string
	ImageName string
	ImageID   string
	StartTime time.Time
}

// Sink receives a source's state. Calls come from the source's goroutines;
// they are cheap and never block for long.
type Sink interface {
	// Replace sets everything the source knows, after a full listing.
	Replace(source string, pods []Pod)
	// Upsert adds or replaces one pod of the source.
	Upsert(source string, pod Pod)
	// Delete removes one pod of the source by key.
	Delete(source string, key string)
	// Synced tells that the source has reported its first full state.
	Synced(source string)
	// Failed reports a failure of the origin during op (connect, list,
	// status, watch, ...); the receiver logs it, rate-limited, and counts
	// it. The source retries by itself.
	Failed(source, op string, err error)
	// Recovered tells that the source works again after failures.
	Recovered(source string)
}

// Source is one origin of workload metadata.
type Source interface {
	// Name is the source's name in logs and metrics (cri, kubernetes,
	// workloads).
	Name() string
	// Run reports the current state to sink, then follows changes until
	// ctx ends. Failures of the origin (an unreachable socket, errors
	// from the API) are logged, counted and retried; Run returns only
	// when ctx ends, or at once with an error for a configuration that
	// can never work.
	Run(ctx context.Context, sink Sink) error
}

// Looker is a Source that can look up one container on demand, used when a
// process shows up in a container the source has not reported yet.
type Looker interface {
	// Lookup returns the pod of the container (or pod sandbox) with this
	// id, or an error matching ErrNotFound when the origin does not know
	// it.
	Lookup(ctx context.Context, containerID string) (Pod, error)
}
