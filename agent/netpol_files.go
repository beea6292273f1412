package agent

import (
	"crypto/sha256"
	"os"
	"slices"
	"strings"

	"github.com/vigilsec/vigil/internal/manifest"
	"github.com/vigilsec/vigil/networkpolicy"
)

// netpolFiles reads the agent's network-policy files. A file is split into
// documents again only when its bytes changed, and a document is parsed
// again only when it is new (networkpolicy.Parser): the policies of the
// files that did not change stay the same values, so the compiler leaves
// what they compile to alone.
type netpolFiles struct {
	paths  []string
	files  map[string]*policyFile
	parser *networkpolicy.Parser
}

type policyFile struct {
	sum  [sha256.Size]byte
	docs []*manifest.Document
}

func newNetpolFiles(paths []string) *netpolFiles {
	return &netpolFiles{paths: paths, files: map[string]*policyFile{}, parser: networkpolicy.NewParser()}
}

// load reads the files as networkpolicy.Load does and returns what they
// declare, or every problem of them (FILE:LINE: field.path: message).
func (f *netpolFiles) load() (*networkpolicy.Resources, error) {
	var docs []*manifest.Document
	var errs manifest.Errors
	seen := map[string]bool{}
	for _, path := range f.paths {
		files, err := policyFilesOf(path)
		errs = append(errs, manifest.AsErrors(path, err)...)
		for _, name := range files {
			seen[name] = true
			d, err := f.read(name)
			errs = append(errs, manifest.AsErrors(name, err)...)
			docs = append(docs, d...)
		}
	}
	for name := range f.files {
		if !seen[name] {
			delete(f.files, name)
		}
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	res, err := f.parser.Parse(docs)
	if err != nil {
		return nil, err
	}
	if err := agentKinds(res); err != nil {
		return nil, err
	}
	return res, nil
}

// policyFilesOf lists a path's files: the file itself, or the manifest
// files below a directory (as manifest.ReadPath reads them).
func policyFilesOf(path string) ([]string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return []string{path}, nil
	}
	return manifest.Files(path)
}

// read returns a file's documents, split again only when its bytes changed.
func (f *netpolFiles) read(name string) ([]*manifest.Document, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		delete(f.files, name)
		return nil, err
	}
	sum := sha256.Sum256(data)
	if pf := f.files[name]; pf != nil && pf.sum == sum {
		return pf.docs, nil
	}
	docs, err := manifest.Split(name, data)
	if err != nil {
		delete(f.files, name)
		return docs, err
	}
	f.files[name] = &policyFile{sum: sum, docs: docs}
	return docs, nil
}

// agentKinds refuses the documents of the agent's network-policy files
// that it would not use: everything but policies and namespaces. The agent
// takes pods from the node, so a Pod or Deployment there would be ignored,
// and an ignored document must never be silent.
func agentKinds(res *networkpolicy.Resources) error {
	var errs manifest.Errors
	for _, ig := range res.Ignored {
		e := *ig
		e.Msg = strings.Replace(e.Msg, "does not affect connectivity: ignored",
			"is not a network policy; the agent's network-policy files hold NetworkPolicy, CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy and Namespace documents", 1)
		errs = append(errs, &e)
	}
	for _, p := range res.Pods {
		what := "Pod " + p.Key()
		if p.Workload != "" {
			what = p.Workload + " in " + p.Namespace
		}
		errs = append(errs, &manifest.Error{File: p.File, Line: p.Line,
			Msg: what + ": the agent takes pods from the node (CRI, Kubernetes, Workload files), not from network-policy files; remove it"})
	}
	errs.Sort()
	return errs.Err()
}

// clusterPolicyDocs holds the policy documents from the cluster, each
// parsed once per version. A version that does not parse is reported and
// the source keeps the policies of its last valid one, as a policy file
// edited into an invalid state does.
type clusterPolicyDocs struct {
	docs map[string]*clusterDoc
}

type clusterDoc struct {
	data     []byte
	parsed   bool
	policies []*networkpolicy.Policy
	err      error
}

// set adds, replaces or (data nil) removes a source's document.
func (c *clusterPolicyDocs) set(source string, data []byte) {
	if data == nil {
		delete(c.docs, source)
		return
	}
	prev := c.docs[source]
	if prev != nil && slices.Equal(prev.data, data) {
		return
	}
	next := &clusterDoc{data: data}
	if prev != nil {
		next.policies = prev.policies
	}
	c.docs[source] = next
}

// policies parses the documents not parsed yet and returns every policy,
// by source; refused documents are returned with their errors, each once,
// and keep the policies of their last valid version.
func (c *clusterPolicyDocs) policies() (pols []*networkpolicy.Policy, refused map[string]error) {
	refused = map[string]error{}
	sources := make([]string, 0, len(c.docs))
	for src := range c.docs {
		sources = append(sources, src)
	}
	slices.Sort(sources)
	for _, src := range sources {
		d := c.docs[src]
		if !d.parsed {
			d.parsed = true
			docs, err := manifest.Split(src, d.data)
			if err == nil {
				var res *networkpolicy.Resources
				if res, err = networkpolicy.Parse(docs); err == nil {
					d.policies = res.Policies
				}
			}
			d.err = err
			if err != nil {
				refused[src] = err
			}
		}
		pols = append(pols, d.policies...)
	}
	return pols, refused
}
