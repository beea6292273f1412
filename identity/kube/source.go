package kube

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/vigilsec/vigil/identity/source"
	"github.com/vigilsec/vigil/internal/kubeclient"
)

// The resources the source reads: pods in full, the rest as metadata.
var (
	podsGVR        = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	namespacesGVR  = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	replicaSetsGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "replicasets"}
	jobsGVR        = schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}
)

// Options configure a Source.
type Options struct {
	// NodeName selects the pods to watch (spec.nodeName); required.
	NodeName string
	// Resync is the informers' resync period (0: none).
	Resync time.Duration
	// Timeout bounds each GET made to resolve an owner (default 5 s).
	Timeout time.Duration
}

// Source reports the pods of one node from the Kubernetes API.
type Source struct {
	name    string
	clients kubeclient.Clients
	opts    Options

	pods       cache.Indexer // *unstructured.Unstructured
	namespaces cache.Indexer // *metav1.PartialObjectMetadata
	queue      workqueue.TypedInterface[string]

	ownerMu sync.Mutex
	owners  map[string]owner // kind/namespace/name -> resolved owner
}

type owner struct{ name, kind string }

var _ source.Source = (*Source)(nil)

// NewSource returns a source reading through clients.
func NewSource(name string, clients kubeclient.Clients, opts Options) *Source {
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	return &Source{name: name, clients: clients, opts: opts, owners: map[string]owner{}}
}

// Name implements source.Source.
func (s *Source) Name() string { return s.name }

// Queue keys: a pod (p/namespace/name) or a namespace (n/name).
func podKey(ns, name string) string { return "p/" + ns + "/" + name }
func nsKey(name string) string      { return "n/" + name }

// Run implements source.Source.
func (s *Source) Run(ctx context.Context, sink source.Sink) error {
	if s.opts.NodeName == "" {
		return fmt.Errorf("kubernetes source: no node name (set --node-name or $NODE_NAME)")
	}
	s.queue = workqueue.NewTyped[string]()
	defer s.queue.ShutDown()

	onNode := func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", s.opts.NodeName).String()
	}
	podInf := kubeclient.Dynamic(s.clients.Dynamic, podsGVR, "", s.opts.Resync, onNode)
	nsInf := kubeclient.Metadata(s.clients.Metadata, namespacesGVR, "", s.opts.Resync, nil)
	s.pods, s.namespaces = podInf.GetIndexer(), nsInf.GetIndexer()

	onWatchError := func(op string) cache.WatchErrorHandlerWithContext {
		return func(_ context.Context, _ *cache.Reflector, err error) { sink.Failed(s.name, op, err) }
	}
	if err := podInf.SetWatchErrorHandlerWithContext(onWatchError("watch pods")); err != nil {
		return err
	}
	if err := nsInf.SetWatchErrorHandlerWithContext(onWatchError("watch namespaces")); err != nil {
		return err
	}
	if _, err := podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { s.enqueuePod(o) },
		UpdateFunc: func(_, o any) { s.enqueuePod(o) },
		DeleteFunc: func(o any) { s.enqueuePod(o) },
	}); err != nil {
		return err
	}
	if _, err := nsInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { s.enqueueNamespace(o) },
		UpdateFunc: func(_, o any) { s.enqueueNamespace(o) },
	}); err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	infCtx, stop := context.WithCancel(ctx)
	defer stop()
	for _, inf := range []cache.SharedIndexInformer{podInf, nsInf} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inf.RunWithContext(infCtx)
		}()
	}

	if !cache.WaitForCacheSync(ctx.Done(), podInf.HasSynced, nsInf.HasSynced) {
		return nil // ctx ended
	}
	// Everything queued so far is in the first full state.
	sink.Replace(s.name, s.all(ctx, sink))
	sink.Synced(s.name)
	sink.Recovered(s.name)

	go func() {
		<-ctx.Done()
		s.queue.ShutDown()
	}()
	for {
		key, quit := s.queue.Get()
		if quit {
			return nil
		}
		s.handle(ctx, sink, key)
		s.queue.Done(key)
	}
}

func (s *Source) enqueuePod(o any) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	if p, ok := o.(*unstructured.Unstructured); ok {
		s.queue.Add(podKey(p.GetNamespace(), p.GetName()))
	}
}

func (s *Source) enqueueNamespace(o any) {
	if n, ok := o.(*metav1.PartialObjectMetadata); ok {
		s.queue.Add(nsKey(n.Name))
	}
}

// typedPod converts a pod of the informer's store. A pod the API server
// sent that does not convert is left out, and said so.
func (s *Source) typedPod(o any) (*corev1.Pod, error) {
	u, ok := o.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("pod store holds a %T", o)
	}
	var p corev1.Pod
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &p); err != nil {
		return nil, fmt.Errorf("pod %s/%s: %w", u.GetNamespace(), u.GetName(), err)
	}
	return &p, nil
}

// podsIn returns the converted pods of the store (namespace "" for all).
func (s *Source) podsIn(sink source.Sink, namespace string) []*corev1.Pod {
	var objs []any
	if namespace == "" {
		objs = s.pods.List()
	} else {
		objs, _ = s.pods.ByIndex(cache.NamespaceIndex, namespace)
	}
	out := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		p, err := s.typedPod(o)
		if err != nil {
			sink.Failed(s.name, "read pod", err)
			continue
		}
		out = append(out, p)
	}
	return out
}

// all converts every pod of the node.
func (s *Source) all(ctx context.Context, sink source.Sink) []source.Pod {
	pods := s.podsIn(sink, "")
	out := make([]source.Pod, 0, len(pods))
	for _, p := range pods {
		if s.ours(p) {
			out = append(out, s.convert(ctx, p))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func (s *Source) handle(ctx context.Context, sink source.Sink, key string) {
	if ns, ok := strings.CutPrefix(key, "n/"); ok {
		for _, p := range s.podsIn(sink, ns) {
			if s.ours(p) {
				sink.Upsert(s.name, s.convert(ctx, p))
			}
		}
		return
	}
	rest := strings.TrimPrefix(key, "p/")
	o, exists, _ := s.pods.GetByKey(rest)
	if !exists {
		sink.Delete(s.name, rest)
		return
	}
	p, err := s.typedPod(o)
	if err != nil {
		sink.Failed(s.name, "read pod", err)
		return
	}
	if !s.ours(p) {
		sink.Delete(s.name, rest)
		return
	}
	sink.Upsert(s.name, s.convert(ctx, p))
}

// ours tells whether a pod runs on this node. The field selector already
// says so to the API server; this holds for clients that ignore it.
func (s *Source) ours(p *corev1.Pod) bool { return p.Spec.NodeName == s.opts.NodeName }

// convert turns a pod into the source's record. The key is namespace/name,
// so that a deletion (which only tells the name) finds it.
func (s *Source) convert(ctx context.Context, p *corev1.Pod) source.Pod {
	out := source.Pod{
		Key: p.Namespace + "/" + p.Name,
		UID: string(p.UID), Name: p.Name, Namespace: p.Namespace,
		Labels: p.Labels, ServiceAccount: p.Spec.ServiceAccountName,
	}
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	if o, ok, _ := s.namespaces.GetByKey(p.Namespace); ok {
		ns := o.(*metav1.PartialObjectMetadata)
		out.NamespaceLabels = ns.Labels
		if out.NamespaceLabels == nil {
			out.NamespaceLabels = map[string]string{}
		}
	}
	o := s.owner(ctx, p)
	out.Workload, out.WorkloadKind = o.name, o.kind
	if !p.Spec.HostNetwork {
		for _, ip := range p.Status.PodIPs {
			if a, err := netip.ParseAddr(ip.IP); err == nil {
				out.IPs = append(out.IPs, a.Unmap())
			}
		}
		if len(out.IPs) == 0 && p.Status.PodIP != "" {
			if a, err := netip.ParseAddr(p.Status.PodIP); err == nil {
				out.IPs = append(out.IPs, a.Unmap())
			}
		}
	}
	for _, c := range p.Spec.Containers {
		for _, port := range c.Ports {
			if port.Name == "" {
				continue
			}
			proto := string(port.Protocol)
			if proto == "" {
				proto = "TCP"
			}
			out.Ports = append(out.Ports, source.Port{Name: port.Name, Protocol: proto, Port: uint16(port.ContainerPort)})
		}
	}
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses, p.Status.EphemeralContainerStatuses} {
		for _, cs := range list {
			id := containerID(cs.ContainerID)
			if id == "" {
				continue
			}
			out.Containers = append(out.Containers, source.Container{
				ID: id, Name: cs.Name, ImageName: cs.Image, ImageID: cs.ImageID, StartTime: startedAt(cs.State),
			})
		}
	}
	return out
}

// containerID strips the runtime scheme of a status's container id
// ("containerd://<id>", "cri-o://<id>", "docker://<id>").
func containerID(s string) string {
	if _, id, ok := strings.Cut(s, "://"); ok {
		return id
	}
	return s
}

func startedAt(st corev1.ContainerState) time.Time {
	switch {
	case st.Running != nil:
		return st.Running.StartedAt.UTC()
	case st.Terminated != nil:
		return st.Terminated.StartedAt.UTC()
	}
	return time.Time{}
}
