package workloadfile

import (
	"fmt"
	"net/netip"
	"path"
	"strings"

	"k8s.io/apimachinery/pkg/api/validate/content"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/vigilsec/vigil/identity/source"
	"github.com/vigilsec/vigil/internal/manifest"
)

// APIVersion and Kind of Workload documents.
const (
	APIVersion = "vigil.dev/v1alpha1"
	Kind       = "Workload"
	// WorkloadKind is the workload_kind events report for them.
	WorkloadKind = "Workload"
	// DefaultNamespace is the namespace of a Workload that names none.
	DefaultNamespace = "default"
)

// Document is the YAML shape of a Workload.
type Document struct {
	manifest.TypeMeta `json:",inline"`
	Metadata          Metadata `json:"metadata"`
	Spec              Spec     `json:"spec"`
}

// Metadata is the subset of Kubernetes object metadata a Workload has.
type Metadata struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// Spec says where the workload's processes run.
type Spec struct {
	// CgroupPath is a cgroup v2 path as /proc/PID/cgroup shows it.
	CgroupPath string `json:"cgroupPath"`
	// IPs are the workload's addresses (for network policy).
	IPs []string `json:"ips,omitempty"`
}

// Parse reads the Workload documents of one file. Every problem is
// reported, each as FILE:LINE: field.path: message; on any problem no
// workload is returned.
func Parse(file string, data []byte) ([]source.Pod, error) {
	docs, err := manifest.Split(file, data)
	errs := manifest.AsErrors(file, err)
	var ok []parsed
	for _, d := range docs {
		p, err := parseDoc(d)
		if err != nil {
			errs = append(errs, manifest.AsErrors(file, err)...)
			continue
		}
		ok = append(ok, parsed{d, p})
	}
	errs = append(errs, duplicates(ok)...)
	if len(errs) > 0 {
		return nil, errs
	}
	out := make([]source.Pod, len(ok))
	for i, p := range ok {
		out[i] = p.pod
	}
	return out, nil
}

type parsed struct {
	doc *manifest.Document
	pod source.Pod
}

func parseDoc(d *manifest.Document) (source.Pod, error) {
	if d.APIVersion != APIVersion {
		msg := fmt.Sprintf("%q is not the Workload API version (want %s)", d.APIVersion, APIVersion)
		if d.APIVersion == "" {
			msg = "missing apiVersion (want " + APIVersion + ")"
		}
		return source.Pod{}, append(manifest.Errors{d.Errorf("apiVersion", "%s", msg)}, manifest.AsErrors(d.File, d.Err())...)
	}
	if d.Kind != Kind {
		msg := fmt.Sprintf("%q is not a kind this file may hold (want %s)", d.Kind, Kind)
		if d.Kind == "" {
			msg = "missing kind (want " + Kind + ")"
		}
		return source.Pod{}, append(manifest.Errors{d.Errorf("kind", "%s", msg)}, manifest.AsErrors(d.File, d.Err())...)
	}
	var doc Document
	if err := d.Decode(&doc); err != nil {
		return source.Pod{}, err
	}
	var errs manifest.Errors
	md := doc.Metadata
	if md.Name == "" {
		errs = append(errs, d.Errorf("metadata.name", "required"))
	} else {
		for _, m := range content.IsDNS1123Subdomain(md.Name) {
			errs = append(errs, d.Errorf("metadata.name", "%q: %s", md.Name, m))
		}
	}
	if md.Namespace == "" {
		md.Namespace = DefaultNamespace
	} else {
		for _, m := range content.IsDNS1123Label(md.Namespace) {
			errs = append(errs, d.Errorf("metadata.namespace", "%q: %s", md.Namespace, m))
		}
	}
	for k, v := range md.Labels {
		for _, m := range validation.IsQualifiedName(k) {
			errs = append(errs, d.Errorf("metadata.labels."+k, "label key %q: %s", k, m))
		}
		for _, m := range validation.IsValidLabelValue(v) {
			errs = append(errs, d.Errorf("metadata.labels."+k, "label value %q: %s", v, m))
		}
	}
	cg := doc.Spec.CgroupPath
	switch {
	case cg == "":
		errs = append(errs, d.Errorf("spec.cgroupPath", "required: the cgroup v2 path of the workload, as /proc/PID/cgroup shows it (such as /system.slice/web.service)"))
	case !strings.HasPrefix(cg, "/"):
		errs = append(errs, d.Errorf("spec.cgroupPath", "%q must be absolute, as /proc/PID/cgroup shows it (such as /system.slice/web.service)", cg))
	case path.Clean(cg) != cg:
		errs = append(errs, d.Errorf("spec.cgroupPath", "%q is not a clean path (want %q)", cg, path.Clean(cg)))
	case strings.ContainsAny(cg, "\x00\n"):
		errs = append(errs, d.Errorf("spec.cgroupPath", "%q holds a control character", cg))
	}
	var ips []netip.Addr
	for i, s := range doc.Spec.IPs {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			errs = append(errs, d.Errorf(fmt.Sprintf("spec.ips[%d]", i), "%q is not an IP address", s))
			continue
		}
		ips = append(ips, a.Unmap())
	}
	if len(errs) > 0 {
		return source.Pod{}, errs
	}
	return source.Pod{
		Key:  md.Namespace + "/" + md.Name,
		Name: md.Name, Namespace: md.Namespace, Labels: md.Labels,
		Workload: md.Name, WorkloadKind: WorkloadKind,
		CgroupPath: cg, IPs: ips,
	}, nil
}

// duplicates reports two workloads of one name, or of one cgroup path.
func duplicates(ps []parsed) manifest.Errors {
	var errs manifest.Errors
	byKey := map[string]*manifest.Document{}
	byPath := map[string]*manifest.Document{}
	for _, p := range ps {
		if first, ok := byKey[p.pod.Key]; ok {
			errs = append(errs, p.doc.Errorf("metadata.name", "workload %s is defined twice (first at line %d)", p.pod.Key, first.LineOf("metadata.name")))
		} else {
			byKey[p.pod.Key] = p.doc
		}
		if first, ok := byPath[p.pod.CgroupPath]; ok {
			errs = append(errs, p.doc.Errorf("spec.cgroupPath", "cgroup %s already belongs to the workload at line %d", p.pod.CgroupPath, first.LineOf("spec.cgroupPath")))
		} else {
			byPath[p.pod.CgroupPath] = p.doc
		}
	}
	return errs
}
