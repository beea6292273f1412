package filter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unsafe"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"

	"github.com/vigilsec/vigil/event"
)

// List is a compiled allow or deny list: one filter per JSON line. An event
// matches the list when it matches any filter (lines are ORed); it matches a
// filter when it matches every key of that filter (keys are ANDed); within a
// key, the values are alternatives.
type List struct {
	filters []*filter
	// verdicts remembers, per (process, parent), which filters' process
	// keys match: the exit, policy and flow events of a process then cost
	// one lookup, and only the event keys (event_set, policy_names) are
	// checked per event. Used for lists of up to 64 filters.
	verdicts []verdict
}

type verdict struct {
	proc, parent *event.Process
	mask         uint64
}

const verdictCacheSize = 1024

// Len returns the number of filters in the list; nil and empty lists have 0.
func (l *List) Len() int {
	if l == nil {
		return 0
	}
	return len(l.filters)
}

// Match reports whether ev matches any filter of the list.
func (l *List) Match(ev *event.Event) bool {
	if l == nil || len(l.filters) == 0 {
		return false
	}
	proc, parent := subjects(ev)
	if l.verdicts == nil || proc == nil {
		for _, f := range l.filters {
			if f.matchEvent(ev) && f.matchProcess(proc, parent) {
				return true
			}
		}
		return false
	}
	v := &l.verdicts[(uint64(uintptr(unsafe.Pointer(proc)))*0x9E3779B97F4A7C15)>>54]
	if v.proc != proc || v.parent != parent {
		var mask uint64
		for i, f := range l.filters {
			if f.matchProcess(proc, parent) {
				mask |= 1 << i
			}
		}
		v.proc, v.parent, v.mask = proc, parent, mask
	}
	for i, f := range l.filters {
		if v.mask&(1<<i) != 0 && f.matchEvent(ev) {
			return true
		}
	}
	return false
}

// subjects returns the process and parent an event is about.
func subjects(ev *event.Event) (proc, parent *event.Process) {
	proc, parent = ev.Process, ev.Parent
	if proc == nil && ev.Alert != nil && ev.Alert.Event != nil {
		proc, parent = ev.Alert.Event.Process, ev.Alert.Event.Parent
	}
	return proc, parent
}

// Set is an allow list and a deny list, applied the way Tetragon does: an
// event passes when the allow list is empty or matches it, and the deny list
// does not match it. Deny wins.
type Set struct {
	Allow, Deny *List
}

// Pass reports whether ev passes the set.
func (s *Set) Pass(ev *event.Event) bool {
	if s == nil {
		return true
	}
	if s.Allow.Len() > 0 && !s.Allow.Match(ev) {
		return false
	}
	return !s.Deny.Match(ev)
}

// Error is a problem in a filter list, with the position of the bad value.
type Error struct {
	Source string // where the list came from, for example "--export-allowlist"
	Line   int    // 1-based line of the JSON object
	Field  string // key, with an index for list values: "binary_regex[1]"
	Err    error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Source)
	if e.Line > 0 {
		b.WriteString(": line ")
		b.WriteString(strconv.Itoa(e.Line))
	}
	if e.Field != "" {
		b.WriteString(": ")
		b.WriteString(e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// ErrUnsupported is wrapped by errors for Tetragon filter keys Vigil does
// not implement.
var ErrUnsupported = errors.New("not supported")

// keys lists the filter keys Vigil implements.
var keys = []string{
	"event_set", "namespace", "namespace_regex", "pod_regex", "container_id",
	"container_name_regex", "labels", "binary_regex", "arguments_regex",
	"parent_binary_regex", "parent_arguments_regex", "policy_names", "pid",
}

// tetragonOnly lists Tetragon filter keys that Vigil rejects by name.
var tetragonOnly = map[string]string{
	"health_check":          "Vigil has no health-check event type",
	"pid_set":               "it depends on process ancestry the exporter does not keep",
	"ancestor_binary_regex": "events carry the parent only",
	"in_init_tree":          "the process cache does not track init trees",
	"capabilities":          "filter on capabilities in the tracing policy instead",
	"cel_expression":        "CEL is not built in",
}

// Parse compiles an allow or deny list from JSON lines, one filter object
// per line; blank lines and lines starting with '#' are skipped. source
// names the origin in errors, for example "--export-denylist".
func Parse(source, text string) (*List, error) {
	l := &List{}
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f, err := parseFilter([]byte(line))
		if err != nil {
			var fe *Error
			if errors.As(err, &fe) {
				fe.Source, fe.Line = source, n+1
				return nil, fe
			}
			return nil, &Error{Source: source, Line: n + 1, Err: err}
		}
		l.filters = append(l.filters, f)
	}
	if len(l.filters) > 0 && len(l.filters) <= 64 {
		l.verdicts = make([]verdict, verdictCacheSize)
	}
	return l, nil
}

// filter is one compiled line. Nil or empty members do not constrain.
type filter struct {
	types           uint64 // bit per event.Type; 0 means any
	namespaces      []string
	namespaceRE     []*matcher
	podRE           []*matcher
	containerID     []*matcher
	containerNameRE []*matcher
	selectors       [][]requirement
	binaryRE        []*matcher
	argumentsRE     []*matcher
	parentBinaryRE  []*matcher
	parentArgsRE    []*matcher
	policies        []string
	pids            []uint32
}

func parseFilter(line []byte) (*filter, error) {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if dec.More() {
		return nil, errors.New("more than one JSON value on the line (one filter object per line)")
	}
	names := make([]string, 0, len(raw))
	for k := range raw {
		names = append(names, k)
	}
	sort.Strings(names)
	f := &filter{}
	for _, key := range names {
		val := raw[key]
		if why, ok := tetragonOnly[key]; ok {
			return nil, &Error{Field: key, Err: fmt.Errorf("%w: %s", ErrUnsupported, why)}
		}
		if !slices.Contains(keys, key) {
			return nil, &Error{Field: key, Err: fmt.Errorf("unknown filter key (known keys: %s)", strings.Join(keys, ", "))}
		}
		var err error
		if key == "pid" {
			err = json.Unmarshal(val, &f.pids)
			if err != nil {
				return nil, &Error{Field: key, Err: fmt.Errorf("want a list of process ids: %w", err)}
			}
			continue
		}
		var list []string
		if err := json.Unmarshal(val, &list); err != nil {
			return nil, &Error{Field: key, Err: errors.New("want a list of strings, for example [\"value\"]")}
		}
		switch key {
		case "event_set":
			f.types, err = parseEventSet(key, list)
		case "namespace":
			f.namespaces = list
		case "policy_names":
			f.policies = list
		case "labels":
			for i, s := range list {
				reqs, perr := parseSelector(s)
				if perr != nil {
					return nil, &Error{Field: fmt.Sprintf("%s[%d]", key, i), Err: perr}
				}
				f.selectors = append(f.selectors, reqs)
			}
		default:
			var ms []*matcher
			for i, s := range list {
				m, rerr := newMatcher(s)
				if rerr != nil {
					return nil, &Error{Field: fmt.Sprintf("%s[%d]", key, i), Err: rerr}
				}
				ms = append(ms, m)
			}
			switch key {
			case "namespace_regex":
				f.namespaceRE = ms
			case "pod_regex":
				f.podRE = ms
			case "container_id":
				f.containerID = ms
			case "container_name_regex":
				f.containerNameRE = ms
			case "binary_regex":
				f.binaryRE = ms
			case "arguments_regex":
				f.argumentsRE = ms
			case "parent_binary_regex":
				f.parentBinaryRE = ms
			case "parent_arguments_regex":
				f.parentArgsRE = ms
			}
		}
		if err != nil {
			return nil, err
		}
	}
	return f, nil
}

// parseEventSet accepts Tetragon's names (PROCESS_EXEC) and Vigil's JSON
// keys (process_exec).
func parseEventSet(key string, list []string) (uint64, error) {
	var set uint64
	for i, s := range list {
		t, ok := event.ParseType(strings.ToLower(s))
		if !ok {
			var valid []string
			for _, t := range event.Types() {
				valid = append(valid, strings.ToUpper(t.String()))
			}
			return 0, &Error{Field: fmt.Sprintf("%s[%d]", key, i),
				Err: fmt.Errorf("unknown event type %q (one of %s)", s, strings.Join(valid, ", "))}
		}
		set |= 1 << t
	}
	return set, nil
}

// matchEvent checks the keys that depend on the event itself.
func (f *filter) matchEvent(ev *event.Event) bool {
	if f.types != 0 && f.types&(1<<ev.Type) == 0 {
		return false
	}
	if f.policies != nil && !matchPolicies(f.policies, ev) {
		return false
	}
	return true
}

// matchProcess checks the keys that depend only on the process and its
// parent, which are immutable: the answer can be remembered.
func (f *filter) matchProcess(proc, parent *event.Process) bool {
	var pod *event.Pod
	if proc != nil {
		pod = proc.Pod
	}
	if f.namespaces != nil && !matchNamespace(f.namespaces, pod) {
		return false
	}
	if f.namespaceRE != nil && (pod == nil || !matchAny(f.namespaceRE, pod.Namespace)) {
		return false
	}
	if f.podRE != nil && (pod == nil || !matchAny(f.podRE, pod.Name)) {
		return false
	}
	if f.containerID != nil && (pod == nil || !matchAny(f.containerID, bareContainerID(pod.Container.ID))) {
		return false
	}
	if f.containerNameRE != nil && (pod == nil || !matchAny(f.containerNameRE, pod.Container.Name)) {
		return false
	}
	if f.selectors != nil && (pod == nil || !matchSelectors(f.selectors, pod.Labels)) {
		return false
	}
	if f.binaryRE != nil && (proc == nil || !matchAny(f.binaryRE, proc.Binary)) {
		return false
	}
	if f.argumentsRE != nil && (proc == nil || !matchAny(f.argumentsRE, proc.Arguments)) {
		return false
	}
	if f.parentBinaryRE != nil && (parent == nil || !matchAny(f.parentBinaryRE, parent.Binary)) {
		return false
	}
	if f.parentArgsRE != nil && (parent == nil || !matchAny(f.parentArgsRE, parent.Arguments)) {
		return false
	}
	if f.pids != nil && (proc == nil || !slices.Contains(f.pids, proc.PID)) {
		return false
	}
	return true
}

// matchNamespace: an empty string in the list stands for host processes
// (no pod), as in Tetragon.
func matchNamespace(list []string, pod *event.Pod) bool {
	ns := ""
	if pod != nil {
		ns = pod.Namespace
	}
	return slices.Contains(list, ns)
}

// bareContainerID strips the runtime prefix ("containerd://").
func bareContainerID(id string) string {
	if i := strings.Index(id, "://"); i >= 0 {
		return id[i+3:]
	}
	return id
}

func matchPolicies(list []string, ev *event.Event) bool {
	switch {
	case ev.Kprobe != nil:
		return slices.Contains(list, ev.Kprobe.PolicyName)
	case ev.Flow != nil:
		for _, refs := range [][]string{ev.Flow.PolicyNames, ev.Flow.EgressDeniedBy, ev.Flow.IngressDeniedBy} {
			for _, p := range refs {
				if slices.Contains(list, p) {
					return true
				}
			}
		}
		return false
	case ev.Alert != nil:
		if slices.Contains(list, ev.Alert.Rule.ID) {
			return true
		}
		if ev.Alert.Event != nil {
			return matchPolicies(list, ev.Alert.Event)
		}
	}
	return false
}

// requirement is one term of a label selector, evaluated on a sorted label
// slice without allocating.
type requirement struct {
	key    string
	op     selection.Operator
	values []string
	num    int64
}

func parseSelector(s string) ([]requirement, error) {
	reqs, err := labels.ParseToRequirements(s)
	if err != nil {
		return nil, fmt.Errorf("label selector %q: %w", s, err)
	}
	out := make([]requirement, 0, len(reqs))
	for i := range reqs {
		r := &reqs[i]
		q := requirement{key: r.Key(), op: r.Operator(), values: r.ValuesUnsorted()}
		if q.op == selection.GreaterThan || q.op == selection.LessThan {
			q.num, _ = strconv.ParseInt(q.values[0], 10, 64) // validated by the parser
		}
		out = append(out, q)
	}
	return out, nil
}

func matchSelectors(sels [][]requirement, ls []event.Label) bool {
	for _, reqs := range sels {
		ok := true
		for i := range reqs {
			if !reqs[i].match(ls) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func labelValue(ls []event.Label, key string) (string, bool) {
	for i := range ls {
		if ls[i].Key == key {
			return ls[i].Value, true
		}
	}
	return "", false
}

func (r *requirement) match(ls []event.Label) bool {
	v, has := labelValue(ls, r.key)
	switch r.op {
	case selection.Exists:
		return has
	case selection.DoesNotExist:
		return !has
	case selection.Equals, selection.DoubleEquals, selection.In:
		return has && slices.Contains(r.values, v)
	case selection.NotEquals, selection.NotIn:
		return !has || !slices.Contains(r.values, v)
	case selection.GreaterThan, selection.LessThan:
		if !has {
			return false
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return false
		}
		if r.op == selection.GreaterThan {
			return n > r.num
		}
		return n < r.num
	}
	return false
}
