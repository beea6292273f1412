package kube

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// maxOwners bounds the owner cache; it is emptied when full.
const maxOwners = 16384

// owner resolves the workload that owns a pod: the controller of its
// controller for ReplicaSets (a Deployment) and Jobs (a CronJob), else its
// controller, else the pod itself.
func (s *Source) owner(ctx context.Context, p *corev1.Pod) owner {
	ref := metav1.GetControllerOf(p)
	if ref == nil {
		return owner{p.Name, "Pod"}
	}
	switch ref.Kind {
	case "ReplicaSet", "Job":
	default:
		return owner{ref.Name, ref.Kind}
	}
	key := ref.Kind + "/" + p.Namespace + "/" + ref.Name
	s.ownerMu.Lock()
	o, ok := s.owners[key]
	s.ownerMu.Unlock()
	if ok {
		return o
	}
	o, cacheable := s.resolveOwner(ctx, p, ref)
	if cacheable {
		s.ownerMu.Lock()
		if len(s.owners) >= maxOwners {
			clear(s.owners)
		}
		s.owners[key] = o
		s.ownerMu.Unlock()
	}
	return o
}

// resolveOwner GETs the ReplicaSet's or Job's metadata. When that fails (no permission,
// not found yet) a ReplicaSet named <deployment>-<pod-template-hash> is
// taken for its Deployment, and the answer is not cached.
func (s *Source) resolveOwner(ctx context.Context, p *corev1.Pod, ref *metav1.OwnerReference) (owner, bool) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	var meta *metav1.ObjectMeta
	switch ref.Kind {
	case "ReplicaSet":
		rs, err := s.clients.Metadata.Resource(replicaSetsGVR).Namespace(p.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			if h := p.Labels["pod-template-hash"]; h != "" {
				if d, ok := strings.CutSuffix(ref.Name, "-"+h); ok && d != "" {
					return owner{d, "Deployment"}, false
				}
			}
			return owner{ref.Name, ref.Kind}, false
		}
		meta = &rs.ObjectMeta
	case "Job":
		j, err := s.clients.Metadata.Resource(jobsGVR).Namespace(p.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return owner{ref.Name, ref.Kind}, false
		}
		meta = &j.ObjectMeta
	}
	if up := metav1.GetControllerOfNoCopy(meta); up != nil {
		return owner{up.Name, up.Kind}, true
	}
	return owner{ref.Name, ref.Kind}, true
}
