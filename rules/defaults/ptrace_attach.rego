package vigil.rules.ptrace_attach

import data.vigil.lib.events

metadata := {
	"id": "VGL-PRIV-001",
	"name": "Process attached with ptrace",
	"description": "A process attached to another, or wrote to its memory or registers, with ptrace: code injection and credential theft from memory.",
	"severity": "high",
	"mitre": {"tactic": "TA0004 Privilege Escalation", "technique": "T1055.008 Ptrace System Calls"},
	"tags": ["process.injection"],
	"events": ["process_kprobe"],
}

requests := {4: "PTRACE_POKETEXT", 5: "PTRACE_POKEDATA", 6: "PTRACE_POKEUSER", 13: "PTRACE_SETREGS", 16: "PTRACE_ATTACH", 16902: "PTRACE_SEIZE"}

alert contains msg if {
	ev := input.process_kprobe
	ev.policy_name == "default-system-changes"
	events.syscall_name(ev.function_name) == "ptrace"
	name := requests[to_number(events.arg(ev, "request").long_arg)]
	msg := sprintf("%s used %s on pid %s", [ev.process.binary, name, events.arg(ev, "pid").long_arg])
}
