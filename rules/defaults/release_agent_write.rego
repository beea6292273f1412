package vigil.rules.release_agent_write

import data.vigil.lib.events

metadata := {
	"id": "VGL-PRIV-006",
	"name": "Cgroup release_agent written",
	"description": "A cgroup v1 release_agent file opened for writing: the kernel runs that program as root on the host when the cgroup empties, the classic escape from a privileged container.",
	"severity": "critical",
	"mitre": {"tactic": "TA0004 Privilege Escalation", "technique": "T1611 Escape to Host"},
	"tags": ["container", "cgroup"],
	"events": ["process_kprobe"],
}

alert contains msg if {
	ev := input.process_kprobe
	ev.policy_name == "default-file-access"
	events.syscall_name(ev.function_name) == "openat"
	path := events.arg(ev, "filename").string_arg
	events.basename(path) == "release_agent"
	bits.and(events.arg(ev, "flags").int_arg, 579) != 0 # O_WRONLY | O_RDWR | O_CREAT | O_TRUNC
	msg := sprintf("%s opened %s for writing", [ev.process.binary, events.abs(ev.process, path)])
}
