package tracingpolicies

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/vigilsec/vigil/internal/manifest"
)

// ParseFile reads a YAML file of one or more TracingPolicy documents. See
// Parse.
func ParseFile(path string) ([]*Policy, error) {
	docs, err := manifest.ReadFile(path)
	return parseDocuments(path, docs, manifest.AsErrors(path, err), nil)
}

// ParseFileAll is ParseFile that also returns, as broken, what could be
// read of the documents with problems, so that a validator can report the
// problems that depend on the kernel along with the others. Broken
// policies must never be loaded.
func ParseFileAll(path string) (valid, broken []*Policy, err error) {
	docs, err := manifest.ReadFile(path)
	valid, err = parseDocuments(path, docs, manifest.AsErrors(path, err), &broken)
	return valid, broken, err
}

// ParsePath parses a policy file, or every *.yaml, *.yml and *.json file below a
// directory, and checks that no two policies share a name. Like Parse, it
// returns the valid policies and every problem.
func ParsePath(path string) ([]*Policy, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, manifest.AsErrors(path, err)
	}
	if !fi.IsDir() {
		return ParseFile(path)
	}
	files, err := manifest.Files(path)
	if err != nil {
		return nil, manifest.AsErrors(path, err)
	}
	if len(files) == 0 {
		return nil, manifest.Errors{{File: path, Msg: manifest.NoFilesMessage}}
	}
	var (
		all  []*Policy
		errs manifest.Errors
	)
	for _, f := range files {
		policies, err := ParseFile(f)
		all = append(all, policies...)
		errs = append(errs, manifest.AsErrors(f, err)...)
	}
	errs = append(errs, CheckUnique(all)...)
	return all, errs.Err()
}

// Parse parses the TracingPolicy documents of data, read from the file
// name, and checks everything that does not depend on the kernel (Validate
// checks the rest). It returns the valid policies, and a manifest.Errors
// listing every problem of the others, each with its line and field path.
func Parse(name string, data []byte) ([]*Policy, error) {
	docs, err := manifest.Split(name, data)
	return parseDocuments(name, docs, manifest.AsErrors(name, err), nil)
}

// parseDocuments parses the documents of one file; errs are the problems
// found in reading it, reported with the documents' own. A policy is
// returned only from a file without problems of its own and a document
// without any: nothing of a broken file is half applied.
func parseDocuments(name string, docs []*manifest.Document, errs manifest.Errors, broken *[]*Policy) ([]*Policy, error) {
	if len(docs) == 0 && len(errs) == 0 {
		return nil, manifest.Errors{{File: name, Line: 1, Msg: "no TracingPolicy documents in this file"}}
	}
	var out []*Policy
	for _, d := range docs {
		p, err := parseDocument(d)
		if err != nil {
			errs = append(errs, manifest.AsErrors(d.File, err)...)
			if p != nil && broken != nil {
				*broken = append(*broken, p)
			}
			continue
		}
		out = append(out, p)
	}
	errs = append(errs, CheckUnique(out)...)
	return out, errs.Err()
}

// CheckUnique reports policies that share a kind, namespace and name: the
// agent loads policies by name, so a second one would replace the first.
func CheckUnique(policies []*Policy) manifest.Errors {
	var errs manifest.Errors
	seen := map[string]*Policy{}
	for _, p := range policies {
		key := p.Kind + "/" + p.Namespace + "/" + p.Name
		if first, ok := seen[key]; ok {
			errs = append(errs, p.Doc.Errorf("metadata.name", "%s %q is defined twice (first at %s:%d)", p.Kind, p.Name, first.Doc.File, first.Doc.LineOf("metadata.name")))
			continue
		}
		seen[key] = p
	}
	return errs
}

// ParseDocument parses one document; see Parse.
func ParseDocument(d *manifest.Document) (*Policy, error) {
	p, err := parseDocument(d)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// parseDocument parses one document. With problems, it also returns what
// could be read of the policy, when the document could be decoded at all.
func parseDocument(d *manifest.Document) (*Policy, error) {
	if d.APIVersion != APIVersionCilium && d.APIVersion != APIVersionVigil {
		msg := fmt.Sprintf("%q is not a TracingPolicy API version (want %s or %s)", d.APIVersion, APIVersionCilium, APIVersionVigil)
		if d.APIVersion == "" {
			msg = fmt.Sprintf("missing apiVersion (want %s or %s)", APIVersionCilium, APIVersionVigil)
		}
		return nil, append(manifest.Errors{d.Errorf("apiVersion", "%s", msg)}, manifest.AsErrors(d.File, d.Err())...)
	}
	if d.Kind != KindTracingPolicy && d.Kind != KindTracingPolicyNamespaced {
		return nil, append(manifest.Errors{d.Errorf("kind", "%q is not a tracing policy kind (want %s or %s)%s",
			d.Kind, KindTracingPolicy, KindTracingPolicyNamespaced, didYouMean(d.Kind, []string{KindTracingPolicy, KindTracingPolicyNamespaced}))},
			manifest.AsErrors(d.File, d.Err())...)
	}
	var doc Document
	if err := d.Decode(&doc); err != nil {
		return checkDespiteDecodeErrors(d, manifest.AsErrors(d.File, err))
	}
	p, c := check(d, &doc)
	if len(c.errs) > 0 {
		p.Warnings = c.warns
		return p, c.errs
	}
	p.Warnings = c.warns
	return p, nil
}

func check(d *manifest.Document, doc *Document) (*Policy, *checker) {
	c := &checker{doc: d}
	p := &Policy{Doc: d, Kind: d.Kind, Name: doc.Metadata.Name, Namespace: doc.Metadata.Namespace, Mode: ModeEnforce, Repeats: Repeats{Window: DefaultFoldWindow}, Spec: doc.Spec}
	c.metadata(p, &doc.Metadata)
	c.spec(p, &doc.Spec)
	return p, c
}

// checkDespiteDecodeErrors reports, besides the problems that made the
// strict decode fail (unknown fields, duplicate keys, values of the wrong
// shape), the problems of the rest of the document, so that every problem
// is reported at once (see manifest.Document.AlsoChecked).
func checkDespiteDecodeErrors(d *manifest.Document, decodeErrs manifest.Errors) (*Policy, error) {
	var doc Document
	if err := d.DecodeLenient(&doc); err != nil {
		return nil, decodeErrs
	}
	p, c := check(d, &doc)
	p.Warnings = c.warns
	return p, d.AlsoChecked(decodeErrs, c.errs)
}

// checker collects the problems of one document.
type checker struct {
	doc   *manifest.Document
	errs  manifest.Errors
	warns manifest.Errors
}

func (c *checker) errorf(path, format string, args ...any) {
	c.errs = append(c.errs, c.doc.Errorf(path, format, args...))
}

func (c *checker) warnf(path, format string, args ...any) {
	c.warns = append(c.warns, c.doc.Errorf(path, format, args...))
}

// unsupported reports a Tetragon field Vigil does not implement.
func (c *checker) unsupported(path, why string) {
	c.errorf(path, "not supported by Vigil: %s", why)
}

func didYouMean(s string, known []string) string {
	if k := manifest.Suggest(s, known); k != "" && k != s {
		return fmt.Sprintf(" (did you mean %q?)", k)
	}
	return ""
}

func (c *checker) metadata(p *Policy, md *metav1.ObjectMeta) {
	switch {
	case md.Name == "" && md.GenerateName != "":
		c.errorf("metadata.generateName", "not supported: give the policy a name in metadata.name")
	case md.Name == "":
		c.errorf("metadata.name", "missing: every policy needs a name")
	default:
		for _, msg := range validation.IsDNS1123Subdomain(md.Name) {
			c.errorf("metadata.name", "%q is not a valid name: %s", md.Name, msg)
		}
	}
	if p.Kind == KindTracingPolicyNamespaced {
		if md.Namespace == "" {
			// As in Tetragon, whose documentation applies such policies
			// with kubectl apply -n: the namespace comes from the cluster
			// object, or from --namespace.
			c.warnf("metadata.namespace", "missing: a TracingPolicyNamespaced applies to the pods of one namespace; it is taken from the cluster object (kubectl apply -n) or --namespace, and the policy cannot load without one")
		} else {
			for _, msg := range validation.IsDNS1123Label(md.Namespace) {
				c.errorf("metadata.namespace", "%q is not a valid namespace: %s", md.Namespace, msg)
			}
		}
	} else if md.Namespace != "" {
		c.errorf("metadata.namespace", "a TracingPolicy is cluster-wide and has no namespace; use kind TracingPolicyNamespaced to restrict it to namespace %q", md.Namespace)
	}
}

func (c *checker) spec(p *Policy, s *Spec) {
	if s.Loader {
		c.unsupported("spec.loader", "Vigil reports loader events only through its own sensors")
	}
	rejectList := func(path string, n int, why string) {
		if n > 0 {
			c.unsupported(path, why)
		}
	}
	rejectList("spec.fentries", len(s.Fentries), "use spec.kprobes; Vigil chooses fentry by itself where kprobes are unavailable")
	rejectList("spec.enforcers", len(s.Enforcers), "Vigil picks the enforcement mechanism per kernel; use Override or Sigkill actions directly")
	rejectList("spec.selectorsMacros", len(s.SelectorsMacros), "write the selectors out in each hook")
	if s.HostSelector != nil {
		c.unsupported("spec.hostSelector", "a policy without podSelector or containerSelector applies to host processes too")
	}
	if s.NodeSelector != nil {
		c.unsupported("spec.nodeSelector", "install the policy only on the nodes it is meant for")
	}

	c.options(p, s.Options)
	p.PodSelector = c.labelSelector("spec.podSelector", podLabels(s.PodSelector), nil)
	p.ContainerSelector = c.labelSelector("spec.containerSelector", s.ContainerSelector, []string{"name", "repo"})

	lists := c.lists(s.Lists)
	used := map[string]bool{}
	for i := range s.KProbes {
		if h := c.kprobe(fmt.Sprintf("spec.kprobes[%d]", i), &s.KProbes[i], lists, used); h != nil {
			p.Hooks = append(p.Hooks, h)
		}
	}
	for i := range s.Tracepoints {
		if h := c.tracepoint(fmt.Sprintf("spec.tracepoints[%d]", i), &s.Tracepoints[i]); h != nil {
			p.Hooks = append(p.Hooks, h)
		}
	}
	for i := range s.LSMHooks {
		if h := c.lsmHook(fmt.Sprintf("spec.lsmhooks[%d]", i), &s.LSMHooks[i]); h != nil {
			p.Hooks = append(p.Hooks, h)
		}
	}
	for i := range s.UProbes {
		if h := c.uprobe(fmt.Sprintf("spec.uprobes[%d]", i), &s.UProbes[i]); h != nil {
			p.Hooks = append(p.Hooks, h)
		}
	}
	for i := range s.Usdts {
		if h := c.usdt(fmt.Sprintf("spec.usdts[%d]", i), &s.Usdts[i]); h != nil {
			p.Hooks = append(p.Hooks, h)
		}
	}
	for i, l := range s.Lists {
		if l.Name != "" && !used[l.Name] {
			c.warnf(fmt.Sprintf("spec.lists[%d].name", i), "list %q is not used by any kprobe (call: \"list:%s\")", l.Name, l.Name)
		}
	}
	// A policy of loader events only is refused for them.
	if len(s.KProbes)+len(s.Tracepoints)+len(s.LSMHooks)+len(s.UProbes)+len(s.Usdts) == 0 && !s.Loader {
		c.errorf("spec", "the policy has no hooks: add spec.kprobes, spec.tracepoints, spec.lsmhooks, spec.uprobes or spec.usdts")
	}
	if len(c.errs) == 0 {
		c.safety(p)
	}
}

// tetragonOptions are the options Tetragon knows and Vigil does not.
var tetragonOptions = map[string]string{
	"disable-kprobe-multi":   "Vigil decides per kernel whether to use kprobe.multi (see vigil probe)",
	"disable-uprobe-multi":   "Vigil attaches uprobes one by one (uprobe.multi is not used)",
	"override-method":        "Vigil picks the override mechanism per kernel: BPF LSM, then fmod_ret, then bpf_override_return (see vigil probe)",
	"sleepable-preload-size": "Vigil has no sleepable programs to size",
}

func (c *checker) options(p *Policy, opts []OptionSpec) {
	seen := map[string]int{}
	for i, o := range opts {
		path := fmt.Sprintf("spec.options[%d]", i)
		if j, dup := seen[o.Name]; dup {
			c.errorf(path+".name", "option %q is already set by spec.options[%d]", o.Name, j)
			continue
		}
		seen[o.Name] = i
		switch o.Name {
		case OptionPolicyMode:
			switch Mode(o.Value) {
			case ModeEnforce, ModeMonitor:
				p.Mode = Mode(o.Value)
			default:
				c.errorf(path+".value", "%q is not a policy mode (want %q or %q)", o.Value, ModeEnforce, ModeMonitor)
			}
		case OptionAllowUnrestrictedEnforcement:
			b, err := strconv.ParseBool(o.Value)
			if err != nil {
				c.errorf(path+".value", "%q is not a boolean (want \"true\" or \"false\")", o.Value)
			}
			p.AllowUnrestrictedEnforcement = b
		case OptionAllowProtectedEnforcement:
			b, err := strconv.ParseBool(o.Value)
			if err != nil {
				c.errorf(path+".value", "%q is not a boolean (want \"true\" or \"false\")", o.Value)
			}
			p.AllowProtectedEnforcement = b
		case OptionRepeatedEvents:
			r, err := parseRepeats(o.Value)
			if err != nil {
				c.errorf(path+".value", "%v", err)
			}
			p.Repeats = r
		case "":
			c.errorf(path+".name", "missing option name")
		default:
			if why, ok := tetragonOptions[o.Name]; ok {
				c.errorf(path+".name", "option %q is not supported by Vigil: %s", o.Name, why)
				continue
			}
			c.errorf(path+".name", "unknown option %q (Vigil knows %q, %q, %q and %q)%s", o.Name, OptionPolicyMode, OptionAllowUnrestrictedEnforcement,
				OptionAllowProtectedEnforcement, OptionRepeatedEvents,
				didYouMean(o.Name, []string{OptionPolicyMode, OptionAllowUnrestrictedEnforcement, OptionAllowProtectedEnforcement, OptionRepeatedEvents}))
		}
	}
}

// parseRepeats parses the value of the repeated-events option.
func parseRepeats(v string) (Repeats, error) {
	switch {
	case v == "fold":
		return Repeats{Window: DefaultFoldWindow}, nil
	case v == "report-all":
		return Repeats{ReportAll: true}, nil
	case strings.HasPrefix(v, "rate-limit="):
		d, err := time.ParseDuration(strings.TrimPrefix(v, "rate-limit="))
		if err != nil || d < DefaultFoldWindow || d > 24*time.Hour {
			return Repeats{Window: DefaultFoldWindow}, fmt.Errorf("%q: the rate limit is a duration between 1s and 24h, such as rate-limit=1m", v)
		}
		return Repeats{Window: d}, nil
	}
	return Repeats{Window: DefaultFoldWindow}, fmt.Errorf("%q: want fold, report-all or rate-limit=DURATION", v)
}

// PodNamespaceLabel is the label a pod selector matches the pod's namespace
// with. Tetragon and Cilium policies write it k8s:io.kubernetes.pod.namespace;
// the parsed selector uses this key, which the agent sets on every pod.
const PodNamespaceLabel = "io.kubernetes.pod.namespace"

const tetragonPodNamespaceLabel = "k8s:" + PodNamespaceLabel

// podLabels returns sel with Tetragon's pod namespace label key replaced by
// PodNamespaceLabel.
func podLabels(sel *metav1.LabelSelector) *metav1.LabelSelector {
	if sel == nil {
		return nil
	}
	out := sel.DeepCopy()
	if v, ok := out.MatchLabels[tetragonPodNamespaceLabel]; ok {
		delete(out.MatchLabels, tetragonPodNamespaceLabel)
		out.MatchLabels[PodNamespaceLabel] = v
	}
	for i := range out.MatchExpressions {
		if out.MatchExpressions[i].Key == tetragonPodNamespaceLabel {
			out.MatchExpressions[i].Key = PodNamespaceLabel
		}
	}
	return out
}

// labelSelector checks a label selector and converts it. keys, when not
// nil, lists the only label keys allowed.
func (c *checker) labelSelector(path string, sel *metav1.LabelSelector, keys []string) labels.Selector {
	if sel == nil {
		return nil
	}
	n := len(c.errs)
	checkKey := func(p, key string) {
		if keys != nil {
			for _, k := range keys {
				if k == key {
					return
				}
			}
			c.errorf(p, "%q is not a container field (want one of %s)%s", key, strings.Join(keys, ", "), didYouMean(key, keys))
			return
		}
		for _, msg := range validation.IsQualifiedName(key) {
			c.errorf(p, "%q is not a valid label key: %s", key, msg)
		}
	}
	checkValue := func(p, v string) {
		for _, msg := range validation.IsValidLabelValue(v) {
			c.errorf(p, "%q is not a valid label value: %s", v, msg)
		}
	}
	for _, k := range sortedKeys(sel.MatchLabels) {
		checkKey(path+".matchLabels."+k, k)
		checkValue(path+".matchLabels."+k, sel.MatchLabels[k])
	}
	for i, e := range sel.MatchExpressions {
		p := fmt.Sprintf("%s.matchExpressions[%d]", path, i)
		checkKey(p+".key", e.Key)
		switch e.Operator {
		case metav1.LabelSelectorOpIn, metav1.LabelSelectorOpNotIn:
			if len(e.Values) == 0 {
				c.errorf(p+".values", "operator %s needs at least one value", e.Operator)
			}
		case metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist:
			if len(e.Values) > 0 {
				c.errorf(p+".values", "operator %s takes no values", e.Operator)
			}
		default:
			c.errorf(p+".operator", "%q is not a label selector operator (want In, NotIn, Exists or DoesNotExist)", e.Operator)
		}
		for j, v := range e.Values {
			checkValue(fmt.Sprintf("%s.values[%d]", p, j), v)
		}
	}
	if len(c.errs) > n {
		return nil
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		c.errorf(path, "%v", err)
		return nil
	}
	return s
}

// list is a resolved entry of spec.lists.
type list struct {
	syscalls bool
	values   []string
}

var listNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

func (c *checker) lists(specs []ListSpec) map[string]*list {
	out := map[string]*list{}
	for i, l := range specs {
		path := fmt.Sprintf("spec.lists[%d]", i)
		switch {
		case l.Name == "":
			c.errorf(path+".name", "missing: a list needs a name to be used as \"list:NAME\"")
			continue
		case !listNameRE.MatchString(l.Name):
			c.errorf(path+".name", "%q is not a valid list name (letters, digits, '_', '.', '-')", l.Name)
			continue
		case out[l.Name] != nil:
			c.errorf(path+".name", "list %q is defined twice", l.Name)
			continue
		}
		res := &list{}
		switch l.Type {
		case "":
		case "syscalls":
			res.syscalls = true
		case "generated_syscalls":
			c.errorf(path+".type", "not supported by Vigil: generated_syscalls would hook every syscall; use the raw_syscalls/sys_enter tracepoint, or list the syscalls")
		case "generated_ftrace":
			c.errorf(path+".type", "not supported by Vigil: generated_ftrace would hook every function matching a pattern; list the functions")
		default:
			c.errorf(path+".type", "%q is not a list type (want \"syscalls\", or nothing for kernel functions)", l.Type)
		}
		if l.Pattern != nil {
			c.unsupported(path+".pattern", "generated lists are not supported; list the functions")
		}
		if l.Validated {
			c.unsupported(path+".validated", "this is Tetragon's internal state; remove it")
		}
		if len(l.Values) == 0 && l.Type != "generated_syscalls" && l.Type != "generated_ftrace" {
			c.errorf(path+".values", "the list is empty")
		}
		if len(l.Values) > MaxListValues {
			c.errorf(path+".values", "%d values; a list holds at most %d", len(l.Values), MaxListValues)
		}
		seen := map[string]int{}
		for j, v := range l.Values {
			vp := fmt.Sprintf("%s.values[%d]", path, j)
			name := v
			if res.syscalls {
				var err error
				if name, err = syscallName(v); err != nil {
					c.errorf(vp, "%v", err)
					continue
				}
			} else if !functionNameRE.MatchString(v) {
				c.errorf(vp, "%q is not a kernel function name", v)
				continue
			}
			if k, dup := seen[name]; dup {
				c.errorf(vp, "%q is already listed (values[%d])", v, k)
				continue
			}
			seen[name] = j
			res.values = append(res.values, name)
		}
		out[l.Name] = res
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
