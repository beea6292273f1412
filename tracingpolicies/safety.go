package tracingpolicies

import (
	"fmt"
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
	}
	return "", ""
}

// restricted reports whether a selector has a filter that limits it to some
// processes or some calls: a matchArgs or matchReturnArgs entry with a
// positive operator, matchBinaries In/Prefix/Postfix, matchPIDs In, or
// matchNamespaces In with a namespace inode. Negated filters (NotIn,
// NotEqual, ...) and capability filters still match nearly everything, and
// "host_ns" matches every process of the host.
func restricted(s *Selector) bool {
	for _, f := range append(append([]ArgFilter(nil), s.MatchArgs...), s.MatchReturnArgs...) {
		if !f.Op.Negated() {
			return true
		}
	}
	for _, b := range s.MatchBinaries {
		if !b.Op.Negated() {
			return true
		}
	}
	for _, p := range s.MatchPIDs {
		if p.Op == OpIn {
			return true
		}
	}
	for _, n := range s.MatchNamespaces {
		if n.Op == OpIn && len(n.Inodes) > 0 {
			return true
		}
	}
	return false
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
}

// safety refuses enforcement that nothing restricts on hooks every process
// passes through, unless the policy opts in with
// allow-unrestricted-enforcement; with the opt-in, each such selector is
// reported as a warning.
func (c *checker) safety(p *Policy) {
	found := false
	for _, h := range p.Hooks {
		what, fn := critical(h)
		if what == "" {
			continue
		}
		for i := range h.Selectors {
			s := &h.Selectors[i]
			if !s.Enforces() || restricted(s) {
				continue
			}
			found = true
			path := s.Path + ".matchActions"
			if p.AllowUnrestrictedEnforcement {
				c.warnf(path, "allow-unrestricted-enforcement is set: %s on %s is not restricted by any filter, so %s", describeActions(s), fn, consequence[what])
				continue
			}
			c.errorf(path, "REFUSED: %s on %s with no filter restricting it: %s. Restrict this selector with matchArgs, matchBinaries (In, Prefix, Postfix), matchPIDs (In) or matchNamespaces (In an inode); or, if this is really what you want, add to spec.options: {name: %s, value: \"true\"}",
				describeActions(s), fn, consequence[what], OptionAllowUnrestrictedEnforcement)
		}
	}
	if p.AllowUnrestrictedEnforcement && !found {
		for i, o := range p.Spec.Options {
			if o.Name == OptionAllowUnrestrictedEnforcement {
				c.warnf(fmt.Sprintf("spec.options[%d]", i), "allow-unrestricted-enforcement has no effect: no selector of this policy needs it; remove it")
			}
		}
	}
}
