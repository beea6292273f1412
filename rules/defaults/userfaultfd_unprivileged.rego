package vigil.rules.userfaultfd_unprivileged

import data.vigil.lib.events

metadata := {
	"id": "VGL-PRIV-008",
	"name": "userfaultfd created by an unprivileged process",
	"description": "A process whose uid is not 0 created a userfaultfd: kernel exploits use it to stop the kernel mid-copy and win a race.",
	"severity": "medium",
	"mitre": {"tactic": "TA0004 Privilege Escalation", "technique": "T1068 Exploitation for Privilege Escalation"},
	"tags": ["kernel", "privilege_escalation"],
	"events": ["process_kprobe"],
}

alert contains msg if {
	ev := input.process_kprobe
	ev.policy_name == "default-system-changes"
	events.syscall_name(ev.function_name) == "userfaultfd"
	ev.process.uid != 0
	msg := sprintf("%s (uid %d) created a userfaultfd", [ev.process.binary, ev.process.uid])
}
