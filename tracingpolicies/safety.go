package tracingpolicies

import (
	"fmt"
	"path"
	"strings"
)

// Hooks that every process passes through. An enforcement action on one of
// them with nothing restricting it would deny every exec, or kill every
// process that execs, forks or makes a syscall: the node would stop working.
var (
	criticalFunctions = map[string]string{
		"security_bprm_check":            "exec",
		"security_bprm_creds_for_exec":   "exec",
		"security_bprm_creds_from_file":  "exec",
		"security_bprm_committing_creds": "exec",
		"security_bprm_committed_creds":  "exec",
		"bprm_execve":                    "exec",
		"do_execveat_common":             "exec",
		"do_execve":                      "exec",
		"do_execveat":                    "exec",
		"kernel_execve":                  "exec",
		"exec_binprm":                    "exec",
		"search_binary_handler":          "exec",
		"load_elf_binary":                "exec",
		"begin_new_exec":                 "exec",
		"setup_new_exec":                 "exec",
		"security_task_alloc":            "fork",
		"kernel_clone":                   "fork",
		"_do_fork":                       "fork",
		"copy_process":                   "fork",
		"wake_up_new_task":               "fork",
		"sched_fork":                     "fork",
	}
	criticalSyscalls = map[string]string{
		"execve": "exec", "execveat": "exec",
		"fork": "fork", "vfork": "fork", "clone": "fork", "clone3": "fork",
	}
	criticalLSMHooks = map[string]string{
		"bprm_check_security":   "exec",
		"bprm_creds_for_exec":   "exec",
		"bprm_creds_from_file":  "exec",
		"bprm_committing_creds": "exec",
		"bprm_committed_creds":  "exec",
		"task_alloc":            "fork",
	}
	criticalTracepoints = map[string]string{
		"sched/sched_process_exec":    "exec",
		"sched/sched_process_fork":    "fork",
		"syscalls/sys_enter_execve":   "exec",
		"syscalls/sys_enter_execveat": "exec",
		"syscalls/sys_exit_execve":    "exec",
		"syscalls/sys_exit_execveat":  "exec",
		"syscalls/sys_enter_clone":    "fork",
		"syscalls/sys_enter_clone3":   "fork",
		"syscalls/sys_enter_fork":     "fork",
		"syscalls/sys_enter_vfork":    "fork",
		"raw_syscalls/sys_enter":      "syscall",
		"raw_syscalls/sys_exit":       "syscall",
	}
)

// critical returns what every process does through the hook ("exec",
// "fork", "syscall") and the function it concerns, or "" when the hook is
// not one every process passes through.
func critical(h *Hook) (what, fn string) {
	switch h.Kind {
	case HookKprobe:
		for _, f := range h.Functions {
			if w, ok := criticalFunctions[f]; ok {
				return w, f
			}
		}
	case HookSyscall:
		for _, f := range h.Functions {
			if w, ok := criticalSyscalls[f]; ok {
				return w, "sys_" + f
			}
		}
	case HookLSM:
		for _, f := range h.Functions {
			if w, ok := criticalLSMHooks[f]; ok {
				return w, f
			}
		}
	case HookTracepoint:
		name := h.Subsystem + "/" + h.Event
		if w, ok := criticalTracepoints[name]; ok {
			return w, name
		}
	case HookUprobe, HookUsdt:
		// A shared library's functions are called by every process that
		// loads it: libc's by nearly all.
		if base := path.Base(h.Binary); strings.Contains(base, ".so") {
			fn := h.Binary
			if len(h.Functions) > 0 {
				fn += ":" + h.Functions[0]
			} else if h.Kind == HookUsdt {
				fn += ":" + h.Provider + ":" + h.Probe
			}
			return "library", fn
		}
	}
	return "", ""
}

// systemBinaryDirs are where nearly every program of a node lives: a
// binary prefix that covers one of them matches nearly every process.
var systemBinaryDirs = []string{"/usr/bin/", "/usr/sbin/", "/bin/", "/sbin/", "/usr/local/bin/", "/usr/local/sbin/"}

// broadPIDSet is the size from which a matchPIDs In set is no hand-picked
// list of processes.
const broadPIDSet = 32

// catchAll is a filter that matches (nearly) every process or call.
type catchAll struct {
	// path is the field path of the filter or of the value that makes it
	// match everything.
	path string
	// what says what it matches, such as `Prefix "/" matches every binary`.
	what string
}

// catchAllPath reports whether a Prefix or Postfix value of a path or
// string matches nearly everything: the empty string, "/" as a prefix
// (every absolute path), a postfix of one character, or, where execs is
// set (the value is a program's path), a prefix covering a directory
// where the system's programs live.
func catchAllPath(prefix bool, v string, execs bool) (string, bool) {
	v = strings.TrimSuffix(v, "\x00")
	switch {
	case v == "":
		return "matches every value", true
	case prefix && v == "/":
		return "matches every absolute path", true
	case !prefix && len(v) <= 1:
		return fmt.Sprintf("matches every path ending in %q, a single character", v), true
	case prefix && execs:
		for _, d := range systemBinaryDirs {
			if strings.HasPrefix(d, v) {
				return "matches every program under " + d, true
			}
		}
	}
	return "", false
}

// catchAllArg returns the value of a positive argument filter that makes
// it match nearly every call, if one does.
func catchAllArg(path string, f ArgFilter, execs bool) (catchAll, bool) {
	switch f.Op {
	case OpPrefix, OpPostfix:
		for j, v := range f.Values {
			if what, ok := catchAllPath(f.Op == OpPrefix, v, execs); ok {
				return catchAll{fmt.Sprintf("%s.values[%d]", path, j), fmt.Sprintf("%s %q %s", f.Op, v, what)}, true
			}
		}
	case OpSAddr, OpDAddr:
		for j, p := range f.Prefixes {
			if p.Bits() == 0 {
				return catchAll{fmt.Sprintf("%s.values[%d]", path, j), fmt.Sprintf("%s %q matches every address", f.Op, f.Values[j])}, true
			}
		}
	case OpSPort, OpDPort:
		if coversAllPorts(f.Ports) {
			return catchAll{path + ".values", fmt.Sprintf("%s %s covers every port", f.Op, strings.Join(f.Values, ", "))}, true
		}
	case OpMask:
		for j, m := range f.Ints {
			if m == ^uint64(0) || (f.Type.Class() == ClassInteger && allBits(f.Type, m)) {
				return catchAll{fmt.Sprintf("%s.values[%d]", path, j), fmt.Sprintf("Mask %s matches every value but zero", f.Values[j])}, true
			}
		}
	}
	return catchAll{}, false
}

// allBits reports whether m has every bit of an integer type set.
func allBits(t ArgType, m uint64) bool {
	size, _ := t.IntSize()
	if size <= 0 || size >= 8 {
		return m == ^uint64(0)
	}
	all := uint64(1)<<(8*size) - 1
	return m&all == all
}

// coversAllPorts reports whether the ranges together cover 0 to 65535.
func coversAllPorts(rs []PortRange) bool {
	next := 0
	for next <= 65535 {
		advanced := false
		for _, r := range rs {
			if int(r.Min) <= next && int(r.Max) >= next {
				next = int(r.Max) + 1
				advanced = true
			}
		}
		if !advanced {
			return false
		}
	}
	return true
}

// catchAllBinary returns the value of a positive matchBinaries entry that
// makes it match nearly every process, if one does.
func catchAllBinary(path string, b BinaryFilter) (catchAll, bool) {
	if b.Op != BinPrefix && b.Op != BinPostfix {
		return catchAll{}, false
	}
	for j, v := range b.Paths {
		if what, ok := catchAllPath(b.Op == BinPrefix, v, true); ok {
			what = strings.Replace(what, "every absolute path", "every binary", 1)
			return catchAll{fmt.Sprintf("%s.values[%d]", path, j), fmt.Sprintf("%s %q %s", b.Op, v, what)}, true
		}
	}
	return catchAll{}, false
}

// catchAllPIDs reports a matchPIDs In entry that matches processes of
// every container: PID 1 of each PID namespace (isNamespacePID), or a set
// of broadPIDSet PIDs or more, which is no hand-picked list.
func catchAllPIDs(path string, p PIDFilter) (catchAll, bool) {
	if p.Op != OpIn {
		return catchAll{}, false
	}
	if p.IsNamespacePID {
		for j, v := range p.PIDs {
			if v == 1 {
				return catchAll{fmt.Sprintf("%s.values[%d]", path, j), "isNamespacePID In 1 matches the first process of every PID namespace: the host's init and every container's entry point"}, true
			}
		}
	}
	if len(p.PIDs) >= broadPIDSet {
		return catchAll{path + ".values", fmt.Sprintf("%d PIDs are no hand-picked list of processes: PIDs are reused, so such a set matches whatever runs under them", len(p.PIDs))}, true
	}
	return catchAll{}, false
}

// filters sorts the positive filters of a selector: the ones that restrict
// it to some processes or some calls, and the ones that match (nearly)
// everything. Negated filters (NotIn, NotEqual, ...) and capability filters
// match nearly everything by design and are neither; "host_ns" matches
// every process of the host. execs says the hook is one every exec passes
// through, where a path or string argument is the program's (or its
// interpreter's).
func filters(s *Selector, execs bool) (restricting int, broad []catchAll) {
	args := func(field string, fs []ArgFilter) {
		for i, f := range fs {
			if f.Op.Negated() {
				continue
			}
			if b, ok := catchAllArg(fmt.Sprintf("%s.%s[%d]", s.Path, field, i), f, execs); ok {
				broad = append(broad, b)
				continue
			}
			restricting++
		}
	}
	args("matchArgs", s.MatchArgs)
	args("matchReturnArgs", s.MatchReturnArgs)
	for i, b := range s.MatchBinaries {
		if b.Op.Negated() {
			continue
		}
		if c, ok := catchAllBinary(fmt.Sprintf("%s.matchBinaries[%d]", s.Path, i), b); ok {
			broad = append(broad, c)
			continue
		}
		restricting++
	}
	for i, p := range s.MatchPIDs {
		if p.Op != OpIn {
			continue
		}
		if c, ok := catchAllPIDs(fmt.Sprintf("%s.matchPIDs[%d]", s.Path, i), p); ok {
			broad = append(broad, c)
			continue
		}
		restricting++
	}
	for _, n := range s.MatchNamespaces {
		if n.Op == OpIn && len(n.Inodes) > 0 {
			restricting++
		}
	}
	return restricting, broad
}

func describeActions(s *Selector) string {
	var names []string
	for _, a := range s.Actions {
		if a.Kind.Enforces() {
			names = append(names, string(a.Kind))
		}
	}
	return strings.Join(names, " and ")
}

var consequence = map[string]string{
	"exec":    "every program started on the node would be denied or killed, including the ones needed to repair it",
	"fork":    "every process that forks would be denied or killed: the node would stop working",
	"syscall": "every process making a system call would be killed: the node would stop working",
	"library": "every process of the node calling it through the shared library would be killed, system daemons included",
}

// safety warns about every filter that matches (nearly) everything, and
// refuses enforcement that nothing restricts on hooks every process passes
// through, unless the policy opts in with allow-unrestricted-enforcement;
// with the opt-in, each such selector is reported as a warning. The
// refusal holds in monitor mode too: a policy's mode can be switched to
// enforce while it runs.
func (c *checker) safety(p *Policy) {
	found := false
	for _, h := range p.Hooks {
		what, fn := critical(h)
		for i := range h.Selectors {
			s := &h.Selectors[i]
			restricting, broad := filters(s, what == "exec")
			for _, b := range broad {
				c.warnf(b.path, "%s: this filter restricts (nearly) nothing", b.what)
			}
			if what == "" || !s.Enforces() || restricting > 0 {
				continue
			}
			found = true
			path := s.Path + ".matchActions"
			why := "is not restricted by any filter"
			if len(broad) > 0 {
				why = "is restricted only by filters that match (nearly) everything (" + describeBroad(s.Path, broad) + ")"
			}
			if p.AllowUnrestrictedEnforcement {
				c.warnf(path, "allow-unrestricted-enforcement is set: %s on %s %s, so %s", describeActions(s), fn, why, consequence[what])
				continue
			}
			if len(broad) > 0 {
				c.errorf(path, "REFUSED: %s on %s %s: %s. Restrict this selector with exact values (matchBinaries In, matchArgs Equal or a longer Prefix, matchPIDs In a few PIDs, matchNamespaces In an inode); or, if this is really what you want, add to spec.options: {name: %s, value: \"true\"}",
					describeActions(s), fn, why, consequence[what], OptionAllowUnrestrictedEnforcement)
				continue
			}
			c.errorf(path, "REFUSED: %s on %s with no filter restricting it: %s. Restrict this selector with matchArgs, matchBinaries (In, Prefix, Postfix), matchPIDs (In) or matchNamespaces (In an inode); or, if this is really what you want, add to spec.options: {name: %s, value: \"true\"}",
				describeActions(s), fn, consequence[what], OptionAllowUnrestrictedEnforcement)
		}
	}
	if p.AllowProtectedEnforcement {
		c.protectedOptIn(p)
	}
	if p.AllowUnrestrictedEnforcement && !found {
		for i, o := range p.Spec.Options {
			if o.Name == OptionAllowUnrestrictedEnforcement {
				c.warnf(fmt.Sprintf("spec.options[%d]", i), "allow-unrestricted-enforcement has no effect: no selector of this policy needs it; remove it")
			}
		}
	}
}

// describeBroad names the catch-all filters of a selector, relative to it.
func describeBroad(selPath string, broad []catchAll) string {
	parts := make([]string, len(broad))
	for i, b := range broad {
		parts[i] = strings.TrimPrefix(b.path, selPath+".") + ": " + b.what
	}
	return strings.Join(parts, "; ")
}

// protectedOptIn warns when allow-protected-enforcement can change nothing:
// no enforcing selector names its processes exactly.
func (c *checker) protectedOptIn(p *Policy) {
	for _, h := range p.Hooks {
		for i := range h.Selectors {
			if s := &h.Selectors[i]; s.Enforces() && s.NamesProcessesExactly() {
				return
			}
		}
	}
	for i, o := range p.Spec.Options {
		if o.Name == OptionAllowProtectedEnforcement {
			c.warnf(fmt.Sprintf("spec.options[%d]", i), "allow-protected-enforcement has no effect: no enforcing selector names its processes exactly (matchBinaries In without followChildren, or matchPIDs In host PIDs without followForks)")
		}
	}
}
