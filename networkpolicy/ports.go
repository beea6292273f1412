package networkpolicy

import (
	"fmt"

	"github.com/vigilsec/vigil/internal/manifest"
)

// NamedPortWarnings returns one warning for each named port of a policy
// rule that no pod has (by name and protocol): that part of the rule
// matches nothing, which is seldom what its author meant (a typo, or pods
// that name the port differently).
func NamedPortWarnings(pols []*Policy, pods []*Pod) manifest.Errors {
	type key struct {
		name  string
		proto Protocol
	}
	have := map[key]bool{}
	for _, pod := range pods {
		for _, cp := range pod.Ports {
			have[key{cp.Name, cp.Protocol}] = true
			have[key{cp.Name, ProtoAny}] = true
		}
	}
	var out manifest.Errors
	for _, pol := range pols {
		for _, sec := range pol.Sections {
			for _, r := range sec.Rules {
				for _, ps := range r.Ports {
					if ps.Name == "" || have[key{ps.Name, ps.Protocol}] {
						continue
					}
					proto := ""
					if ps.Protocol != ProtoAny {
						proto = fmt.Sprintf(" (%s)", ps.Protocol)
					}
					out = append(out, &manifest.Error{File: pol.File, Line: ps.Line, Path: ps.Path,
						Msg: fmt.Sprintf("no pod has a port named %q%s: the rule matches nothing on it", ps.Name, proto)})
				}
			}
		}
	}
	out.Sort()
	return out
}
