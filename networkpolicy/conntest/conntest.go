package conntest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vigilsec/vigil/internal/manifest"
	"github.com/vigilsec/vigil/networkpolicy"
)

// Kind and APIVersion of the test document.
const (
	APIVersion = "vigil.dev/v1alpha1"
	Kind       = "ConnectivityTest"
)

type testDoc struct {
	manifest.TypeMeta `json:",inline"`
	Metadata          struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Description string     `json:"description"`
		Base        []string   `json:"base"`
		OfflineOnly string     `json:"offlineOnly"`
		Steps       []stepSpec `json:"steps"`
		stepSpec    `json:",inline"`
	} `json:"spec"`
}

type stepSpec struct {
	Name   string       `json:"name"`
	Cases  []caseSpec   `json:"cases"`
	Matrix []matrixSpec `json:"matrix"`
}

type caseSpec struct {
	From   string                   `json:"from"`
	To     string                   `json:"to"`
	Port   networkpolicy.PortString `json:"port"`
	Expect string                   `json:"expect"`
}

type matrixSpec struct {
	Port   networkpolicy.PortString `json:"port"`
	Expect string                   `json:"expect"`
	Except []caseSpec               `json:"except"`
}

// Suite is one truth table.
type Suite struct {
	File        string
	Name        string
	Description string
	// OfflineOnly, when set, says why the datapath cannot run this table.
	OfflineOnly string
	docs        []*manifest.Document
	Steps       []Step
}

// Step is one state of the resources and the flows checked in it. A
// document annotated with vigil.dev/test-steps: "0,2" exists only in the
// listed steps (counted from 0), which models updates: a policy added,
// removed or changed, a pod or namespace relabelled.
type Step struct {
	Name  string
	Cases []Case
}

// AnnotationSteps limits a document to some steps of a table.
const AnnotationSteps = "vigil.dev/test-steps"

// Case is one flow and its expected verdict.
type Case struct {
	From, To string // namespace/pod or an IP address
	Protocol networkpolicy.Protocol
	Port     uint16
	Expect   networkpolicy.Verdict
	// Where is FILE:LINE of the case, for failure messages.
	Where string
}

func (c Case) String() string {
	return fmt.Sprintf("%s -> %s %d/%s", c.From, c.To, c.Port, c.Protocol)
}

// Load reads a truth table file.
func Load(path string) (*Suite, error) {
	docs, err := manifest.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s := &Suite{File: path}
	var td *manifest.Document
	for _, d := range docs {
		if d.APIVersion == APIVersion && d.Kind == Kind {
			if td != nil {
				return nil, d.Errorf("", "a file holds one %s", Kind)
			}
			td = d
			continue
		}
		s.docs = append(s.docs, d)
	}
	if td == nil {
		return nil, fmt.Errorf("%s: no %s %s document", path, APIVersion, Kind)
	}
	var t testDoc
	if err := td.Decode(&t); err != nil {
		return nil, err
	}
	s.Name, s.Description, s.OfflineOnly = t.Metadata.Name, t.Spec.Description, t.Spec.OfflineOnly
	for _, b := range t.Spec.Base {
		bd, err := manifest.ReadFile(filepath.Join(filepath.Dir(path), b))
		if err != nil {
			return nil, td.Errorf("spec.base", "%v", err)
		}
		s.docs = append(bd, s.docs...)
	}
	steps := t.Spec.Steps
	if len(t.Spec.Cases) > 0 || len(t.Spec.Matrix) > 0 {
		steps = append([]stepSpec{t.Spec.stepSpec}, steps...)
	}
	if len(steps) == 0 {
		return nil, td.Errorf("spec", "no cases")
	}
	for i, st := range steps {
		path := fmt.Sprintf("spec.steps[%d]", i)
		if len(t.Spec.Steps) < len(steps) {
			path = "spec"
			if i > 0 {
				path = fmt.Sprintf("spec.steps[%d]", i-1)
			}
		}
		step := Step{Name: st.Name}
		for j, c := range st.Cases {
			cp := fmt.Sprintf("%s.cases[%d]", path, j)
			cs, err := parseCase(td, cp, c, "")
			if err != nil {
				return nil, err
			}
			step.Cases = append(step.Cases, cs)
		}
		for j, m := range st.Matrix {
			mp := fmt.Sprintf("%s.matrix[%d]", path, j)
			res, err := s.Resources(len(s.Steps))
			if err != nil {
				return nil, err
			}
			cases, err := expandMatrix(td, mp, m, res.Pods)
			if err != nil {
				return nil, err
			}
			step.Cases = append(step.Cases, cases...)
		}
		s.Steps = append(s.Steps, step)
	}
	return s, nil
}

// Resources returns the resources of a step.
func (s *Suite) Resources(step int) (*networkpolicy.Resources, error) {
	var docs []*manifest.Document
	for _, d := range s.docs {
		in, err := inStep(d, step)
		if err != nil {
			return nil, err
		}
		if in {
			docs = append(docs, d)
		}
	}
	return networkpolicy.Parse(docs)
}

func inStep(d *manifest.Document, step int) (bool, error) {
	var meta struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	// Only the annotations matter here; the document's kind checks the rest.
	if err := d.DecodeLenient(&meta); err != nil {
		return false, err
	}
	v, ok := meta.Metadata.Annotations[AnnotationSteps]
	if !ok {
		return true, nil
	}
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return false, d.Errorf("metadata.annotations."+AnnotationSteps, "want step numbers such as \"0,2\", got %q", v)
		}
		if n == step {
			return true, nil
		}
	}
	return false, nil
}

func parseCase(td *manifest.Document, path string, c caseSpec, defExpect string) (Case, error) {
	cs := Case{From: c.From, To: c.To, Where: fmt.Sprintf("%s:%d", td.File, td.LineOf(path))}
	if c.From == "" || c.To == "" {
		return cs, td.Errorf(path, "from and to are required")
	}
	var err error
	if cs.Port, cs.Protocol, err = ParsePort(string(c.Port)); err != nil {
		return cs, td.Errorf(path+".port", "%v", err)
	}
	exp := c.Expect
	if exp == "" {
		exp = defExpect
	}
	if cs.Expect, err = ParseVerdict(exp); err != nil {
		return cs, td.Errorf(path+".expect", "%v", err)
	}
	return cs, nil
}

func expandMatrix(td *manifest.Document, path string, m matrixSpec, pods []*networkpolicy.Pod) ([]Case, error) {
	port, proto, err := ParsePort(string(m.Port))
	if err != nil {
		return nil, td.Errorf(path+".port", "%v", err)
	}
	def, err := ParseVerdict(m.Expect)
	if err != nil {
		return nil, td.Errorf(path+".expect", "%v", err)
	}
	type override struct {
		from, to string
		v        networkpolicy.Verdict
	}
	var ovs []override
	for i, e := range m.Except {
		v, err := ParseVerdict(e.Expect)
		if err != nil {
			return nil, td.Errorf(fmt.Sprintf("%s.except[%d].expect", path, i), "%v", err)
		}
		ovs = append(ovs, override{e.From, e.To, v})
	}
	where := fmt.Sprintf("%s:%d", td.File, td.LineOf(path))
	var out []Case
	for _, from := range pods {
		for _, to := range pods {
			if from == to {
				continue // traffic of a pod to itself is not policed
			}
			c := Case{From: from.Key(), To: to.Key(), Protocol: proto, Port: port, Expect: def, Where: where}
			for _, o := range ovs {
				if match(o.from, c.From) && match(o.to, c.To) {
					c.Expect = o.v
				}
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// match matches a pod key against "*", "ns/*" or "ns/pod".
func match(pattern, key string) bool {
	if pattern == "*" || pattern == key {
		return true
	}
	if ns, ok := strings.CutSuffix(pattern, "/*"); ok {
		return strings.HasPrefix(key, ns+"/")
	}
	return false
}

// ParsePort parses "80/TCP", "53/udp" or "80" (TCP).
func ParsePort(s string) (uint16, networkpolicy.Protocol, error) { return networkpolicy.ParsePort(s) }

// ParseVerdict parses allow, deny or audit.
func ParseVerdict(s string) (networkpolicy.Verdict, error) {
	switch strings.ToLower(s) {
	case "allow", "allowed":
		return networkpolicy.Allow, nil
	case "deny", "denied":
		return networkpolicy.Deny, nil
	case "audit":
		return networkpolicy.Audit, nil
	}
	return 0, fmt.Errorf("unknown verdict %q (want allow, deny or audit)", s)
}

// Files lists the truth tables in a directory (files named *.yaml that hold
// a ConnectivityTest; base files are skipped).
func Files(dir string) ([]string, error) {
	files, err := manifest.Files(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if strings.Contains(string(b), "kind: "+Kind) {
			out = append(out, f)
		}
	}
	return out, nil
}
