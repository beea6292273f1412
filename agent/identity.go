package agent

import (
	"net/netip"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/identity"
	"github.com/vigilsec/vigil/tracingpolicies"
)

// podLookup adapts the identity resolver to the process cache.
type podLookup struct{ r *identity.Resolver }

func (p podLookup) PodForCgroup(id uint64) *event.Pod {
	pod, _ := p.r.PodForCgroup(id)
	return pod
}

// scoper returns the cgroups of the pods a scoped tracing policy selects.
func scoper(r *identity.Resolver) func(p *tracingpolicies.Policy) []uint64 {
	return func(p *tracingpolicies.Policy) []uint64 {
		var out []uint64
		for _, w := range r.Workloads() {
			for _, id := range w.CgroupIDs {
				pod, _ := r.PodForCgroup(id)
				if pod == nil {
					pod = w.Pod
				}
				if policySelects(p, pod) {
					out = append(out, id)
				}
			}
		}
		return out
	}
}

// policySelects reports whether a scoped policy applies to a pod (and its
// container, when the pod value names one).
func policySelects(p *tracingpolicies.Policy, pod *event.Pod) bool {
	if pod == nil {
		return false
	}
	if p.Kind == tracingpolicies.KindTracingPolicyNamespaced && pod.Namespace != p.Namespace {
		return false
	}
	if p.PodSelector != nil {
		set := labels.Set{tracingpolicies.PodNamespaceLabel: pod.Namespace}
		for _, l := range pod.Labels {
			set[l.Key] = l.Value
		}
		if !p.PodSelector.Matches(set) {
			return false
		}
	}
	if p.ContainerSelector != nil {
		if pod.Container.ID == "" {
			return false // the pod's own cgroups, not a container's
		}
		repo := pod.Container.ImageName
		if i := strings.LastIndexAny(repo, ":@"); i > strings.LastIndexByte(repo, '/') {
			repo = repo[:i]
		}
		if !p.ContainerSelector.Matches(labels.Set{"name": pod.Container.Name, "repo": repo}) {
			return false
		}
	}
	return true
}

// podsByIP maps the addresses of the node's known pods to them, for the
// remote ends of flows.
func podsByIP(r *identity.Resolver) map[netip.Addr]*event.Pod {
	m := map[netip.Addr]*event.Pod{}
	for _, w := range r.Workloads() {
		for _, ip := range w.IPs {
			m[ip.Unmap()] = w.Pod
		}
	}
	return m
}
