package vigil.rules.ptrace_traceme

import data.vigil.lib.events

metadata := {
	"id": "VGL-DEF-004",
	"name": "Anti-debugging with PTRACE_TRACEME",
	"description": "A process asked to be traced by its parent outside a debugger: malware takes the one tracer slot so that no debugger or analysis tool can attach.",
	"severity": "medium",
	"mitre": {"tactic": "TA0005 Defense Evasion", "technique": "T1622 Debugger Evasion"},
	"tags": ["process.injection", "defense_evasion"],
	"events": ["process_kprobe"],
}

debuggers := {"gdb", "strace", "ltrace", "lldb", "valgrind", "rr", "dlv", "perf"}

alert contains msg if {
	ev := input.process_kprobe
	ev.policy_name == "default-system-changes"
	events.syscall_name(ev.function_name) == "ptrace"
	to_number(events.arg(ev, "request").long_arg) == 0
	not events.basename(object.get(input.process_kprobe, ["parent", "binary"], "")) in debuggers
	msg := sprintf("%s called PTRACE_TRACEME", [ev.process.binary])
}
