package tracingpolicies

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

func (c *checker) selectors(hookPath string, h *Hook, specs []SelectorSpec) []Selector {
	if len(specs) > MaxSelectorsPerHook {
		c.errorf(hookPath+".selectors", "%d selectors; a hook has at most %d", len(specs), MaxSelectorsPerHook)
	}
	var out []Selector
	for i := range specs {
		out = append(out, c.selector(fmt.Sprintf("%s.selectors[%d]", hookPath, i), h, &specs[i]))
	}
	return out
}

func (c *checker) selector(path string, h *Hook, s *SelectorSpec) Selector {
	sel := Selector{Path: path, Label: s.Label}
	if len(s.Label) > MaxLabelLen {
		c.errorf(path+".label", "label is %d bytes long; at most %d", len(s.Label), MaxLabelLen)
	}
	reject := func(field string, n int, why string) {
		if n > 0 {
			c.unsupported(path+"."+field, why)
		}
	}
	reject("matchData", len(s.MatchData), "data fields are not implemented")
	reject("matchReturnActions", len(s.MatchReturnActions), "actions at return are not implemented; use matchActions")
	reject("matchParentBinaries", len(s.MatchParentBinaries), "parent binary filters are not implemented; use matchBinaries with followChildren")
	reject("matchNamespaceChanges", len(s.MatchNamespaceChanges), "namespace change filters are not implemented")
	reject("matchCapabilityChanges", len(s.MatchCapabilityChanges), "capability change filters are not implemented")
	reject("matchWorkloads", len(s.MatchWorkloads), "use spec.podSelector and spec.containerSelector")
	reject("macros", len(s.Macros), "selector macros are not implemented; write the filters out")

	if len(s.MatchArgs) > MaxMatchArgsPerSelector {
		c.errorf(path+".matchArgs", "%d matchArgs; a selector has at most %d", len(s.MatchArgs), MaxMatchArgsPerSelector)
	}
	for i, a := range s.MatchArgs {
		if f, ok := c.argFilter(fmt.Sprintf("%s.matchArgs[%d]", path, i), h, a, false); ok {
			sel.MatchArgs = append(sel.MatchArgs, f)
		}
	}
	if len(s.MatchReturnArgs) > 0 && h.Kind != HookKprobe && h.Kind != HookSyscall {
		c.errorf(path+".matchReturnArgs", "only kprobes and syscalls have a return value to match")
	} else {
		if len(s.MatchReturnArgs) > MaxMatchReturnArgsPerSelector {
			c.errorf(path+".matchReturnArgs", "%d matchReturnArgs; a selector has at most %d", len(s.MatchReturnArgs), MaxMatchReturnArgsPerSelector)
		}
		for i, a := range s.MatchReturnArgs {
			if f, ok := c.argFilter(fmt.Sprintf("%s.matchReturnArgs[%d]", path, i), h, a, true); ok {
				sel.MatchReturnArgs = append(sel.MatchReturnArgs, f)
			}
		}
	}
	sel.MatchBinaries = c.binaryFilters(path+".matchBinaries", s.MatchBinaries)
	sel.MatchPIDs = c.pidFilters(path+".matchPIDs", s.MatchPIDs)
	sel.MatchNamespaces = c.namespaceFilters(path+".matchNamespaces", s.MatchNamespaces)
	sel.MatchCapabilities = c.capabilityFilters(path+".matchCapabilities", s.MatchCapabilities)
	sel.Actions = c.actions(path+".matchActions", h, s.MatchActions)
	return sel
}

// operator resolves an argument operator name.
func (c *checker) operator(path, name string) (Operator, bool) {
	if op, ok := operatorAliases[name]; ok {
		return op, true
	}
	switch why, known := unsupportedOperators[name]; {
	case name == "":
		c.errorf(path, "missing operator")
	case known:
		c.errorf(path, "operator %q: %s", name, why)
	default:
		c.errorf(path, "unknown operator %q%s", name, didYouMean(name, operatorNames()))
	}
	return "", false
}

func (c *checker) argFilter(path string, h *Hook, a ArgSelector, ret bool) (ArgFilter, bool) {
	f := ArgFilter{Index: a.Index, Arg: -1}
	switch {
	case ret:
		if h.ReturnArg == nil {
			c.errorf(path, "matchReturnArgs needs return: true and a returnArg on the hook")
			return f, false
		}
		if a.Index != 0 || len(a.Args) > 0 {
			c.errorf(path+".index", "the return value has no index; remove index and args")
		}
		f.Index = 0
		f.Type = h.ReturnArg.Type
	case len(a.Args) > 0:
		if len(a.Args) > 1 {
			c.errorf(path+".args", "one argument per filter; several are only used by CapabilitiesGained, which Vigil does not support")
			return f, false
		}
		if a.Index != 0 {
			c.errorf(path+".index", "set either index (the parameter) or args (the position in args), not both")
			return f, false
		}
		pos := a.Args[0]
		if int(pos) >= len(h.Args) {
			c.errorf(path+".args[0]", "position %d is out of range: the hook has %d args", pos, len(h.Args))
			return f, false
		}
		f.Arg = int(pos)
		f.Index = h.Args[pos].Index
		f.Type = h.Args[pos].Type
	default:
		found := false
		for i, arg := range h.Args {
			if arg.Index == a.Index {
				f.Arg, f.Type, found = i, arg.Type, true
				break
			}
		}
		if !found && h.Kind == HookTracepoint && int(a.Index) < len(h.Args) {
			// Tetragon rewrites a tracepoint filter's index that no
			// argument reads into the position in args; its examples rely
			// on it (raw_syscalls/sys_enter with args[0] at index 4).
			pos := int(a.Index)
			c.warnf(path+".index", "no entry of args reads field %d; as in Tetragon it names args[%d] (field %d) by position: write args: [%d] to say so", a.Index, pos, h.Args[pos].Index, pos)
			f.Arg, f.Index, f.Type, found = pos, h.Args[pos].Index, h.Args[pos].Type, true
		}
		if !found {
			c.errorf(path+".index", "no entry of args reads index %d: add one (index: %d, type: ...) so the filter knows the argument's type", a.Index, a.Index)
			return f, false
		}
	}
	if f.Type == "" {
		return f, false // the argument's type was already reported
	}
	op, ok := c.operator(path+".operator", a.Operator)
	if !ok {
		return f, false
	}
	f.Op = op
	if !operatorAllowed(f.Type, op) {
		if f.Type.Class() == ClassOpaque {
			c.errorf(path+".operator", "%s arguments cannot be filtered", f.Type)
		} else {
			c.errorf(path+".operator", "operator %s does not apply to a %s argument (use %s)", op, f.Type, joinOps(operatorsFor(f.Type)))
		}
		return f, false
	}
	if !c.valueCount(path+".values", len(a.Values)) {
		return f, false
	}
	n := len(c.errs)
	for i, v := range a.Values {
		c.argValue(fmt.Sprintf("%s.values[%d]", path, i), &f, v)
	}
	return f, len(c.errs) == n
}

func joinOps(ops []Operator) string {
	s := make([]string, len(ops))
	for i, o := range ops {
		s[i] = string(o)
	}
	return strings.Join(s, ", ")
}

func (c *checker) valueCount(path string, n int) bool {
	switch {
	case n == 0:
		c.errorf(path, "missing: at least one value")
		return false
	case n > MaxValuesPerFilter:
		c.errorf(path, "%d values; a filter has at most %d", n, MaxValuesPerFilter)
		return false
	}
	return true
}

// argValue parses one value of an argument filter into f.
func (c *checker) argValue(path string, f *ArgFilter, v string) {
	switch f.Op {
	case OpSAddr, OpDAddr, OpNotSAddr, OpNotDAddr:
		p, masked, err := parseAddrPrefix(v)
		if err != nil {
			c.errorf(path, "%v", err)
			return
		}
		if masked {
			c.warnf(path, "%q has host bits set; it is read as %s, as Tetragon does", v, p)
		}
		f.Prefixes = append(f.Prefixes, p)
		f.Values = append(f.Values, v)
		return
	case OpSPort, OpDPort, OpNotSPort, OpNotDPort:
		r, err := parsePortRange(v)
		if err != nil {
			c.errorf(path, "%v", err)
			return
		}
		f.Ports = append(f.Ports, r)
		f.Values = append(f.Values, v)
		return
	case OpProtocol:
		n, err := parseProtocol(v)
		if err != nil {
			c.errorf(path, "%v", err)
			return
		}
		f.Ints = append(f.Ints, n)
		f.Values = append(f.Values, v)
		return
	case OpState:
		n, err := parseState(v)
		if err != nil {
			c.errorf(path, "%v", err)
			return
		}
		f.Ints = append(f.Ints, n)
		f.Values = append(f.Values, v)
		return
	case OpFamily:
		n, err := parseFamily(v)
		if err != nil {
			c.errorf(path, "%v", err)
			return
		}
		f.Ints = append(f.Ints, n)
		f.Values = append(f.Values, v)
		return
	}
	switch f.Type.Class() {
	case ClassInteger:
		var n uint64
		var err error
		if f.Type == TypeCapability {
			n, err = parseCapability(v, true)
		} else {
			size, signed := f.Type.IntSize()
			n, err = parseInteger(v, size, signed)
		}
		if err != nil {
			c.errorf(path, "%v", err)
			return
		}
		f.Ints = append(f.Ints, n)
	case ClassCapabilities:
		if strings.HasPrefix(v, "CAP_") {
			n, err := parseCapability(v, false)
			if err != nil {
				c.errorf(path, "%v", err)
				return
			}
			f.Ints = append(f.Ints, 1<<n)
		} else {
			n, err := parseInteger(v, 8, false)
			if err != nil {
				c.errorf(path, "%q is neither a capability name (CAP_SYS_ADMIN) nor a capability mask", v)
				return
			}
			f.Ints = append(f.Ints, n)
		}
	case ClassString, ClassPath:
		// A trailing NUL (written "\0" in YAML) is accepted as in Tetragon,
		// where it forces an exact match; Equal is always exact here.
		s := strings.TrimSuffix(v, "\x00")
		switch {
		case s == "":
			c.errorf(path, "empty value")
			return
		case strings.ContainsRune(s, 0):
			c.errorf(path, "the value contains a NUL byte")
			return
		case len(s) > maxValueLen(f.Op):
			c.errorf(path, "value is %d bytes long; %s compares at most %d", len(s), f.Op, maxValueLen(f.Op))
			return
		}
		if absolutePathType(f.Type) && !strings.HasPrefix(s, "/") && f.Op != OpPostfix && f.Op != OpNotPostfix &&
			!(f.Type == TypeFd && (s == SocketPath || s == PipePath)) {
			also := ""
			if f.Type == TypeFd {
				also = " (" + SocketPath + " and " + PipePath + " for sockets and pipes)"
			}
			// Tetragon accepts it (and never matches it either): warn.
			c.warnf(path, "%q is not an absolute path: %s arguments are reported as full paths%s, so it never matches (use Postfix to match the end of a path)", s, f.Type, also)
		}
		v = s
	}
	f.Values = append(f.Values, v)
}

// absolutePathType reports whether the type's value is always an absolute
// path. A filename is what the process passed, and may be relative.
// SocketPath and PipePath are the paths fd arguments report for sockets and
// pipes (/proc/PID/fd shows socket:[INODE] and pipe:[INODE]).
const (
	SocketPath = "socket:"
	PipePath   = "pipe:"
)

func absolutePathType(t ArgType) bool {
	return t == TypeFd || t == TypeFile || t == TypePath || t == TypeLinuxBinprm
}

func (c *checker) binaryFilters(path string, specs []BinarySelector) []BinaryFilter {
	if len(specs) > MaxBinaryFiltersPerSelector {
		c.errorf(path, "%d matchBinaries entries; a selector has at most %d", len(specs), MaxBinaryFiltersPerSelector)
	}
	var out []BinaryFilter
	for i, b := range specs {
		p := fmt.Sprintf("%s[%d]", path, i)
		op, ok := binaryOperators[b.Operator]
		if !ok {
			if b.Operator == "" {
				c.errorf(p+".operator", "missing operator (In, NotIn, Prefix, NotPrefix, Postfix or NotPostfix)")
			} else {
				c.errorf(p+".operator", "%q is not a matchBinaries operator (want In, NotIn, Prefix, NotPrefix, Postfix or NotPostfix)%s",
					b.Operator, didYouMean(b.Operator, []string{"In", "NotIn", "Prefix", "NotPrefix", "Postfix", "NotPostfix"}))
			}
			continue
		}
		if b.FollowChildren && op != BinIn {
			c.errorf(p+".followChildren", "followChildren works with In only, not %s", op)
		}
		if !c.valueCount(p+".values", len(b.Values)) {
			continue
		}
		seen := map[string]bool{}
		for j, v := range b.Values {
			vp := fmt.Sprintf("%s.values[%d]", p, j)
			switch {
			case v == "":
				c.errorf(vp, "empty value")
			case strings.ContainsRune(v, 0):
				c.errorf(vp, "the value contains a NUL byte")
			case len(v) > maxBinaryLen(op):
				c.errorf(vp, "binary path is %d bytes long; %s compares at most %d", len(v), op, maxBinaryLen(op))
			case op != BinPostfix && op != BinNotPostfix && !strings.HasPrefix(v, "/"):
				c.errorf(vp, "%q is not an absolute path: matchBinaries compares the executable's full path (use Postfix to match its end)", v)
			case seen[v]:
				c.errorf(vp, "%q is listed twice", v)
			}
			seen[v] = true
		}
		out = append(out, BinaryFilter{Op: op, Paths: b.Values, FollowChildren: b.FollowChildren})
	}
	return out
}

func (c *checker) setOperator(path, op string) (SetOperator, bool) {
	switch SetOperator(op) {
	case OpIn, OpNotIn:
		return SetOperator(op), true
	case "":
		c.errorf(path, "missing operator (In or NotIn)")
	default:
		c.errorf(path, "%q is not an operator here (want In or NotIn)%s", op, didYouMean(op, []string{"In", "NotIn"}))
	}
	return "", false
}

func (c *checker) pidFilters(path string, specs []PIDSelector) []PIDFilter {
	if len(specs) > MaxPIDFiltersPerSelector {
		c.errorf(path, "%d matchPIDs entries; a selector has at most %d", len(specs), MaxPIDFiltersPerSelector)
	}
	var out []PIDFilter
	for i, s := range specs {
		p := fmt.Sprintf("%s[%d]", path, i)
		op, ok := c.setOperator(p+".operator", s.Operator)
		if !ok || !c.valueCount(p+".values", len(s.Values)) {
			continue
		}
		out = append(out, PIDFilter{Op: op, PIDs: s.Values, FollowForks: s.FollowForks, IsNamespacePID: s.IsNamespacePID})
	}
	return out
}

const hostNS = "host_ns"

func (c *checker) namespaceFilters(path string, specs []NamespaceSelector) []NamespaceFilter {
	if len(specs) > MaxNamespaceFiltersPerSelector {
		c.errorf(path, "%d matchNamespaces entries; a selector has at most %d", len(specs), MaxNamespaceFiltersPerSelector)
	}
	var out []NamespaceFilter
	seen := map[NamespaceType]int{}
	names := make([]string, len(NamespaceTypes))
	for i, t := range NamespaceTypes {
		names[i] = string(t)
	}
	for i, s := range specs {
		p := fmt.Sprintf("%s[%d]", path, i)
		ns := NamespaceType(s.Namespace)
		valid := false
		for _, t := range NamespaceTypes {
			valid = valid || t == ns
		}
		if !valid {
			c.errorf(p+".namespace", "%q is not a namespace (want one of %s)%s", s.Namespace, strings.Join(names, ", "), didYouMean(s.Namespace, names))
			continue
		}
		if j, dup := seen[ns]; dup {
			c.errorf(p+".namespace", "namespace %s is already filtered by %s[%d]; put all its values in one entry", ns, path, j)
			continue
		}
		seen[ns] = i
		op, ok := c.setOperator(p+".operator", s.Operator)
		if !ok || !c.valueCount(p+".values", len(s.Values)) {
			continue
		}
		f := NamespaceFilter{Namespace: ns, Op: op}
		for j, v := range s.Values {
			if v == hostNS {
				f.HostNS = true
				continue
			}
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil || n > math.MaxUint32 {
				c.errorf(fmt.Sprintf("%s.values[%d]", p, j), "%q is not a namespace: want its inode number (as lsns shows it) or %q", v, hostNS)
				continue
			}
			f.Inodes = append(f.Inodes, uint32(n))
		}
		out = append(out, f)
	}
	return out
}

func (c *checker) capabilityFilters(path string, specs []CapabilitySelector) []CapabilityFilter {
	if len(specs) > MaxCapabilityFiltersPerSelector {
		c.errorf(path, "%d matchCapabilities entries; a selector has at most %d", len(specs), MaxCapabilityFiltersPerSelector)
	}
	var out []CapabilityFilter
	seen := map[CapabilitySet]int{}
	for i, s := range specs {
		p := fmt.Sprintf("%s[%d]", path, i)
		set := CapabilitySet(s.Type)
		switch set {
		case "":
			set = CapEffective
		case CapEffective, CapInheritable, CapPermitted:
		default:
			c.errorf(p+".type", "%q is not a capability set (want Effective, Inheritable or Permitted)%s", s.Type,
				didYouMean(s.Type, []string{"Effective", "Inheritable", "Permitted"}))
			continue
		}
		if j, dup := seen[set]; dup {
			c.errorf(p+".type", "the %s set is already filtered by %s[%d]; put all its values in one entry", set, path, j)
			continue
		}
		seen[set] = i
		op, ok := c.setOperator(p+".operator", s.Operator)
		if !ok || !c.valueCount(p+".values", len(s.Values)) {
			continue
		}
		f := CapabilityFilter{Set: set, Op: op, IsNamespaceCapability: s.IsNamespaceCapability}
		for j, v := range s.Values {
			n, err := parseCapability(v, false)
			if err != nil {
				c.errorf(fmt.Sprintf("%s.values[%d]", p, j), "%v", err)
				continue
			}
			f.Mask |= 1 << n
		}
		out = append(out, f)
	}
	return out
}
