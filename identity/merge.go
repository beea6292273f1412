package identity

import (
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/identity/source"
)

// PodNamespaceLabel is the label every pod carries with its namespace, so
// that Tetragon- and Cilium-style selectors on namespaces match.
const PodNamespaceLabel = "io.kubernetes.pod.namespace"

// Source names, and their rank when sources disagree on a pod's fields:
// the Kubernetes API knows owners and the pod's current labels; a Workload
// file is what the user wrote; the runtime knows containers and images best.
const (
	SourceKubernetes = "kubernetes"
	SourceWorkloads  = "workloads"
	SourceCRI        = "cri"
)

func sourceRank(name string) int {
	switch {
	case name == SourceKubernetes:
		return 0
	case name == SourceWorkloads:
		return 1
	default:
		return 2
	}
}

// Port is a named container port of a workload.
type Port = source.Port

// Workload is one pod (or standalone workload) of this node with the
// cgroups its processes run in.
type Workload struct {
	// Pod identifies the workload; its Container is empty.
	Pod *event.Pod
	// CgroupIDs are the ids of every known cgroup of the pod: its
	// containers', their descendants', the sandbox's and the pod's own,
	// sorted.
	CgroupIDs []uint64
	IPs       []netip.Addr
	// NamespaceLabels are the labels of the pod's namespace, when the
	// Kubernetes source knows them.
	NamespaceLabels map[string]string
	ServiceAccount  string
	Ports           []Port
}

// merged is one pod after merging what every source says of it.
type merged struct {
	key        string
	pod        *event.Pod            // pod level, no container
	containers map[string]*event.Pod // by container id
	ips        []netip.Addr
	nsLabels   map[string]string
	sa         string
	ports      []Port
	cgroupPath string
}

// view is the merged state of all sources, with the indexes resolution
// needs. It is built by the Run goroutine and read only by it.
type view struct {
	pods        []*merged
	byContainer map[string]*merged
	bySandbox   map[string]*merged
	byUID       map[string]*merged
	byPath      map[string]*merged // standalone workloads by cgroup path
}

type ranked struct {
	rank int
	name string
	pod  *source.Pod
}

// buildView merges the sources' pods. Pods with a uid are merged across
// sources (and across a runtime's sandboxes of one pod); others stand
// alone. cache holds the event.Pod values of the previous view: an
// unchanged pod keeps its pointer, so callers can compare pointers.
func buildView(state map[string]map[string]source.Pod, cache map[string]*event.Pod) (*view, map[string]*event.Pod) {
	groups := map[string][]ranked{}
	for name, pods := range state {
		for k := range pods {
			p := pods[k]
			key := "uid:" + p.UID
			if p.UID == "" {
				key = name + "/" + p.Key
			}
			groups[key] = append(groups[key], ranked{sourceRank(name), name, &p})
		}
	}
	v := &view{
		byContainer: map[string]*merged{}, bySandbox: map[string]*merged{},
		byUID: map[string]*merged{}, byPath: map[string]*merged{},
	}
	next := make(map[string]*event.Pod, len(cache))
	keep := func(k string, p *event.Pod) *event.Pod {
		if old := cache[k]; old != nil && podEqual(old, p) {
			p = old
		}
		next[k] = p
		return p
	}
	for key, rs := range groups {
		sort.Slice(rs, func(i, j int) bool {
			if rs[i].rank != rs[j].rank {
				return rs[i].rank < rs[j].rank
			}
			return rs[i].name < rs[j].name
		})
		m := mergeGroup(key, rs)
		m.pod = keep(key, m.pod)
		for id, cp := range m.containers {
			m.containers[id] = keep(key+"\x00"+id, cp)
			v.byContainer[id] = m
		}
		for _, r := range rs {
			if r.pod.SandboxID != "" {
				v.bySandbox[r.pod.SandboxID] = m
			}
		}
		if m.pod.UID != "" {
			v.byUID[m.pod.UID] = m
		}
		if m.cgroupPath != "" {
			v.byPath[m.cgroupPath] = m
		}
		v.pods = append(v.pods, m)
	}
	sort.Slice(v.pods, func(i, j int) bool {
		a, b := v.pods[i].pod, v.pods[j].pod
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return v.pods[i].key < v.pods[j].key
	})
	return v, next
}

// mergeGroup merges the records of one pod, best-ranked first: the first
// non-empty value of each pod field wins; containers are merged by id with
// the runtime's values first.
func mergeGroup(key string, rs []ranked) *merged {
	m := &merged{key: key, containers: map[string]*event.Pod{}}
	p := &event.Pod{}
	var labels map[string]string
	for _, r := range rs {
		s := r.pod
		first(&p.Namespace, s.Namespace)
		first(&p.Name, s.Name)
		first(&p.UID, s.UID)
		first(&p.Workload, s.Workload)
		first(&p.WorkloadKind, s.WorkloadKind)
		first(&m.sa, s.ServiceAccount)
		first(&m.cgroupPath, s.CgroupPath)
		if labels == nil && s.Labels != nil {
			labels = s.Labels
		}
		if m.nsLabels == nil && s.NamespaceLabels != nil {
			m.nsLabels = s.NamespaceLabels
		}
		if m.ports == nil && s.Ports != nil {
			m.ports = s.Ports
		}
		for _, a := range s.IPs {
			if !slices.Contains(m.ips, a) {
				m.ips = append(m.ips, a)
			}
		}
	}
	p.Labels = podLabels(labels, p.Namespace)
	m.pod = p
	// Containers: the runtime's record first (it has the image the
	// container really runs), then the others fill gaps.
	byID := map[string]*event.Container{}
	var order []string
	for i := len(rs) - 1; i >= 0; i-- {
		for _, c := range rs[i].pod.Containers {
			if c.ID == "" {
				continue
			}
			ec := byID[c.ID]
			if ec == nil {
				ec = &event.Container{ID: c.ID}
				byID[c.ID] = ec
				order = append(order, c.ID)
			}
			first(&ec.Name, c.Name)
			first(&ec.ImageName, c.ImageName)
			first(&ec.ImageID, c.ImageID)
			if ec.StartTime.IsZero() {
				ec.StartTime = c.StartTime
			}
		}
	}
	for _, id := range order {
		cp := *p
		cp.Container = *byID[id]
		m.containers[id] = &cp
	}
	slices.SortFunc(m.ips, func(a, b netip.Addr) int { return a.Compare(b) })
	return m
}

func first(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}

// podLabels turns a label map into sorted labels, with the namespace label.
func podLabels(m map[string]string, namespace string) []event.Label {
	out := make([]event.Label, 0, len(m)+1)
	for k, v := range m {
		if k == PodNamespaceLabel {
			continue
		}
		out = append(out, event.Label{Key: k, Value: v})
	}
	if namespace != "" {
		out = append(out, event.Label{Key: PodNamespaceLabel, Value: namespace})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func podEqual(a, b *event.Pod) bool {
	return a.Namespace == b.Namespace && a.Name == b.Name && a.UID == b.UID &&
		a.Workload == b.Workload && a.WorkloadKind == b.WorkloadKind &&
		a.Container.ID == b.Container.ID && a.Container.Name == b.Container.Name &&
		a.Container.ImageName == b.Container.ImageName && a.Container.ImageID == b.Container.ImageID &&
		a.Container.StartTime.Equal(b.Container.StartTime) &&
		slices.Equal(a.Labels, b.Labels)
}

// resolution is what one cgroup path resolves to.
type resolution struct {
	pod *event.Pod
	m   *merged
	// containerID is set when the path names a container the view does
	// not know.
	containerID string
}

// resolve maps a cgroup path to its pod: a standalone workload whose cgroup
// is the path or an ancestor first (what the user declared), then the
// container (or sandbox) the path names, then the pod cgroup.
func (v *view) resolve(path string, containerID, podUID string) resolution {
	if len(v.byPath) > 0 {
		for p := path; ; {
			if m := v.byPath[p]; m != nil {
				return resolution{pod: m.pod, m: m}
			}
			i := strings.LastIndexByte(p, '/')
			if i <= 0 {
				if p != "/" {
					if m := v.byPath["/"]; m != nil {
						return resolution{pod: m.pod, m: m}
					}
				}
				break
			}
			p = p[:i]
		}
	}
	if containerID != "" {
		if m := v.byContainer[containerID]; m != nil {
			return resolution{pod: m.containers[containerID], m: m}
		}
		if m := v.bySandbox[containerID]; m != nil {
			return resolution{pod: m.pod, m: m}
		}
		return resolution{containerID: containerID}
	}
	if podUID != "" {
		if m := v.byUID[podUID]; m != nil {
			return resolution{pod: m.pod, m: m}
		}
	}
	return resolution{}
}
