package networkpolicy

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/validate/content"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vigilsec/vigil/internal/manifest"
)

// Pod is a workload endpoint: a pod of a manifest, the pod template of a
// controller, or a pod the agent found on the node.
type Pod struct {
	Namespace      string
	Name           string
	Labels         map[string]string
	ServiceAccount string
	// IPs are the pod's addresses; a pod without addresses is matched by
	// label selectors only, never by ipBlock.
	IPs   []netip.Addr
	Ports []ContainerPort
	// Workload is "Kind/name" when the pod stands for a controller's pods.
	Workload string
	File     string
	Line     int
}

// Key is namespace/name.
func (p *Pod) Key() string { return p.Namespace + "/" + p.Name }

// ContainerPort is a named port of one of the pod's containers.
type ContainerPort struct {
	Name     string
	Protocol Protocol
	Port     uint16
}

// Namespace is a namespace and its labels.
type Namespace struct {
	Name   string
	Labels map[string]string
}

// Resources is everything policy evaluation needs: namespaces, pods and
// policies. The agent fills it from the cluster; the offline commands from
// manifests.
type Resources struct {
	Namespaces []*Namespace
	Pods       []*Pod
	Policies   []*Policy
	// HostIPs are the node's own addresses (the host entity).
	HostIPs []netip.Addr
	// Ignored lists the documents of kinds that do not affect connectivity
	// (a Service, a ConfigMap), one located entry each. The offline
	// commands print them as warnings; the agent refuses them in its
	// network-policy files.
	Ignored manifest.Errors
}

// Load reads manifests from files or directories (multi-document YAML) and
// returns what they declare. Documents with problems are left out, and every
// problem is returned as manifest.Errors (FILE:LINE: field.path: message).
// The resources are valid and usable even when an error is returned.
func Load(paths ...string) (*Resources, error) {
	var docs []*manifest.Document
	var errs manifest.Errors
	for _, path := range paths {
		d, err := manifest.ReadPath(path)
		errs = append(errs, manifest.AsErrors(path, err)...)
		docs = append(docs, d...)
	}
	res, err := Parse(docs)
	errs = append(errs, manifest.AsErrors("", err)...)
	return res, errs.Err()
}

// looksLikePolicy reports documents that read as a network policy Vigil
// does not know (AdminNetworkPolicy, CiliumCIDRGroup, a v1beta1 version):
// ignoring them would leave traffic open that the file says is closed.
func looksLikePolicy(d *manifest.Document) bool {
	group, _, _ := strings.Cut(d.APIVersion, "/")
	switch {
	case strings.Contains(d.Kind, "NetworkPolicy"):
		return true
	case group == "cilium.io" || strings.HasSuffix(group, "networking.k8s.io"):
		return strings.Contains(d.Kind, "Policy") || strings.Contains(d.Kind, "CIDR")
	}
	return false
}

func isPolicyKind(kind string) bool {
	switch PolicyKind(kind) {
	case KindNetworkPolicy, KindCiliumPolicy, KindCiliumClusterwide:
		return true
	}
	return false
}

func policyAPIVersion(kind string) string {
	if PolicyKind(kind) == KindNetworkPolicy {
		return "networking.k8s.io/v1"
	}
	return "cilium.io/v2"
}

func sortPolicies(ps []*Policy) {
	sort.Slice(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
}

func addPolicy(d *manifest.Document, pols map[string]*Policy, p *Policy) error {
	key := p.String()
	if prev, dup := pols[key]; dup {
		return d.Errorf("metadata.name", "%s is already declared at %s:%d", key, prev.File, prev.Line)
	}
	pols[key] = p
	return nil
}

func parseNamespace(d *manifest.Document) (*Namespace, error) {
	var ns corev1.Namespace
	p := &problems{doc: d}
	if !p.decode(&ns) {
		ns = corev1.Namespace{}
		d.DecodeLenient(&ns)
	}
	name, _ := objectName(p, &ns.ObjectMeta, false)
	validateLabels(p, "metadata.labels", ns.Labels)
	if err := p.err(); err != nil {
		return nil, err
	}
	return &Namespace{Name: name, Labels: ns.Labels}, nil
}

func validateLabels(p *problems, path string, set map[string]string) {
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, ok := selectorKey(p, path+"."+k, k, ViewPod); !ok {
			continue
		}
		if msgs := labelValueProblems(set[k]); msgs != "" {
			p.add(path+"."+k, "invalid label value %q: %s", set[k], msgs)
		}
	}
}

// parseWorkload returns the pods a document stands for: the pod itself, or
// one pod per controller standing for all of its replicas (they share
// labels, so they share an identity). It returns nil, nil for other kinds.
func parseWorkload(d *manifest.Document) ([]*Pod, error) {
	var (
		md      *metav1.ObjectMeta
		tmpl    *corev1.PodTemplateSpec
		spec    *corev1.PodSpec
		status  *corev1.PodStatus
		prefix  = "spec.template."
		podMeta *metav1.ObjectMeta
		p       = &problems{doc: d}
	)
	switch d.APIVersion + " " + d.Kind {
	case "v1 Pod":
		var o corev1.Pod
		if !p.decode(&o) {
			o = corev1.Pod{}
			d.DecodeLenient(&o)
		}
		md, podMeta, spec, status, prefix = &o.ObjectMeta, &o.ObjectMeta, &o.Spec, &o.Status, ""
	case "apps/v1 Deployment":
		var o appsv1.Deployment
		if !p.decode(&o) {
			o = appsv1.Deployment{}
			d.DecodeLenient(&o)
		}
		md, tmpl = &o.ObjectMeta, &o.Spec.Template
	case "apps/v1 ReplicaSet":
		var o appsv1.ReplicaSet
		if !p.decode(&o) {
			o = appsv1.ReplicaSet{}
			d.DecodeLenient(&o)
		}
		md, tmpl = &o.ObjectMeta, &o.Spec.Template
	case "apps/v1 StatefulSet":
		var o appsv1.StatefulSet
		if !p.decode(&o) {
			o = appsv1.StatefulSet{}
			d.DecodeLenient(&o)
		}
		md, tmpl = &o.ObjectMeta, &o.Spec.Template
	case "apps/v1 DaemonSet":
		var o appsv1.DaemonSet
		if !p.decode(&o) {
			o = appsv1.DaemonSet{}
			d.DecodeLenient(&o)
		}
		md, tmpl = &o.ObjectMeta, &o.Spec.Template
	case "batch/v1 Job":
		var o batchv1.Job
		if !p.decode(&o) {
			o = batchv1.Job{}
			d.DecodeLenient(&o)
		}
		md, tmpl = &o.ObjectMeta, &o.Spec.Template
	default:
		return nil, nil
	}
	name, ns := objectName(p, md, true)
	pod := &Pod{Namespace: ns, Name: name, File: d.File, Line: d.Line}
	if tmpl != nil {
		podMeta, spec = &tmpl.ObjectMeta, &tmpl.Spec
		pod.Workload = d.Kind + "/" + name
	}
	pod.Labels = podMeta.Labels
	validateLabels(p, prefix+"metadata.labels", pod.Labels)
	pod.ServiceAccount = spec.ServiceAccountName
	if pod.ServiceAccount == "" {
		pod.ServiceAccount = "default"
	}
	names := map[string]bool{}
	for i, c := range spec.Containers {
		for j, cp := range c.Ports {
			path := fmt.Sprintf("%sspec.containers[%d].ports[%d]", prefix, i, j)
			proto, err := ParseProtocol(string(cp.Protocol))
			if cp.Protocol == "" {
				proto, err = ProtoTCP, nil
			}
			if err != nil {
				p.add(path+".protocol", "%v", err)
				continue
			}
			if cp.ContainerPort < 1 || cp.ContainerPort > 65535 {
				p.add(path+".containerPort", "port %d is out of range (1-65535)", cp.ContainerPort)
				continue
			}
			if cp.Name == "" {
				continue
			}
			if names[cp.Name] {
				p.add(path+".name", "duplicate port name %q in the pod", cp.Name)
				continue
			}
			names[cp.Name] = true
			pod.Ports = append(pod.Ports, ContainerPort{Name: cp.Name, Protocol: proto, Port: uint16(cp.ContainerPort)})
		}
	}
	if status != nil {
		seen := map[netip.Addr]bool{}
		addIP := func(path, s string) {
			if s == "" {
				return
			}
			a, err := netip.ParseAddr(s)
			if err != nil || a.Zone() != "" {
				p.add(path, "invalid IP address %q", s)
				return
			}
			a = a.Unmap()
			if !seen[a] {
				seen[a] = true
				pod.IPs = append(pod.IPs, a)
			}
		}
		addIP("status.podIP", status.PodIP)
		for i, ip := range status.PodIPs {
			addIP(fmt.Sprintf("status.podIPs[%d].ip", i), ip.IP)
		}
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return []*Pod{pod}, nil
}

func labelValueProblems(v string) string {
	return strings.Join(content.IsLabelValue(v), "; ")
}
