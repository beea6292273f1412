package networkpolicy

import (
	"sort"

	"github.com/vigilsec/vigil/internal/manifest"
)

// Parse converts decoded documents into resources; see Load.
func Parse(docs []*manifest.Document) (*Resources, error) {
	return NewParser().Parse(docs)
}

// Parser converts documents into resources as Parse does, and remembers
// what each document gave: a document parsed before (the same
// *manifest.Document) is not decoded again, and its policy is the same
// *Policy, which tells a Compiler that it did not change. A Parser is not
// safe for concurrent use.
type Parser struct {
	docs map[*manifest.Document]*parsedDoc
}

// parsedDoc is what one document declares, or its problems.
type parsedDoc struct {
	policy  *Policy
	ns      *Namespace
	pods    []*Pod
	ignored *manifest.Error
	err     error
}

// NewParser returns a parser that remembers nothing yet.
func NewParser() *Parser { return &Parser{docs: map[*manifest.Document]*parsedDoc{}} }

// Parse converts docs into resources. Documents with problems are left
// out and every problem is returned (FILE:LINE: field.path: message); the
// resources are valid and usable even when an error is returned. The
// parser forgets the documents of earlier calls that are not in docs.
func (ps *Parser) Parse(docs []*manifest.Document) (*Resources, error) {
	res := &Resources{}
	var errs manifest.Errors
	pods := map[string]*Pod{}
	nss := map[string]*Namespace{}
	pols := map[string]*Policy{}
	seen := make(map[*manifest.Document]*parsedDoc, len(docs))
	for _, d := range docs {
		pd := ps.docs[d]
		if pd == nil {
			pd = parseDocument(d)
		}
		seen[d] = pd
		err := pd.err
		switch {
		case err != nil:
		case pd.policy != nil:
			err = addPolicy(d, pols, pd.policy)
		case pd.ns != nil:
			if prev, dup := nss[pd.ns.Name]; dup && prev != nil {
				err = d.Errorf("metadata.name", "namespace %q is declared twice", pd.ns.Name)
			} else {
				nss[pd.ns.Name] = pd.ns
			}
		case pd.ignored != nil:
			res.Ignored = append(res.Ignored, pd.ignored)
		}
		for _, p := range pd.pods {
			if prev, dup := pods[p.Key()]; dup {
				err = d.Errorf("metadata.name", "pod %s is already declared at %s:%d", p.Key(), prev.File, prev.Line)
				break
			}
			pods[p.Key()] = p
		}
		errs = append(errs, manifest.AsErrors(d.File, err)...)
	}
	ps.docs = seen
	for _, p := range pods {
		res.Pods = append(res.Pods, p)
	}
	sort.Slice(res.Pods, func(i, j int) bool { return res.Pods[i].Key() < res.Pods[j].Key() })
	for _, p := range pols {
		res.Policies = append(res.Policies, p)
	}
	sortPolicies(res.Policies)
	for _, ns := range nss {
		res.Namespaces = append(res.Namespaces, ns)
	}
	sort.Slice(res.Namespaces, func(i, j int) bool { return res.Namespaces[i].Name < res.Namespaces[j].Name })
	return res, errs.Err()
}

// parseDocument decodes and checks one document.
func parseDocument(d *manifest.Document) *parsedDoc {
	pd := &parsedDoc{}
	if d.Kind == "" || d.APIVersion == "" {
		errs := manifest.Errors{d.Errorf("", "a document needs apiVersion and kind")}
		pd.err = append(errs, manifest.AsErrors(d.File, d.Err())...)
		return pd
	}
	switch d.APIVersion + " " + d.Kind {
	case "networking.k8s.io/v1 NetworkPolicy":
		pd.policy, pd.err = parseNetworkPolicy(d)
	case "cilium.io/v2 CiliumNetworkPolicy", "cilium.io/v2 CiliumClusterwideNetworkPolicy":
		pd.policy, pd.err = parseCiliumPolicy(d, d.Kind == string(KindCiliumClusterwide))
	case "v1 Namespace":
		pd.ns, pd.err = parseNamespace(d)
	default:
		pd.pods, pd.err = parseWorkload(d)
		if pd.pods != nil || pd.err != nil {
			break
		}
		switch {
		case isPolicyKind(d.Kind):
			pd.err = d.Errorf("apiVersion", "unsupported apiVersion %q for %s (want %s)", d.APIVersion, d.Kind, policyAPIVersion(d.Kind))
		case looksLikePolicy(d):
			pd.err = d.Errorf("kind", "%s %s is a policy kind Vigil does not enforce (supported: NetworkPolicy networking.k8s.io/v1, CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy cilium.io/v2)", d.APIVersion, d.Kind)
		default:
			// Not a policy: ignored, but its duplicate keys are still
			// refused (they could hide another kind).
			if pd.err = d.Err(); pd.err == nil {
				pd.ignored = d.Errorf("kind", "%s %s does not affect connectivity: ignored", d.Kind, d.Name)
			}
		}
	}
	if pd.err != nil {
		pd.policy, pd.ns = nil, nil
	}
	return pd
}
