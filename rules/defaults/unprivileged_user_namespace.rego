package vigil.rules.unprivileged_user_namespace

import data.vigil.lib.events

metadata := {
	"id": "VGL-PRIV-002",
	"name": "User namespace created by an unprivileged user",
	"description": "A non-root process created a user namespace, in which it holds every capability: the first step of many kernel privilege escalation exploits.",
	"severity": "medium",
	"mitre": {"tactic": "TA0004 Privilege Escalation", "technique": "T1068 Exploitation for Privilege Escalation"},
	"tags": ["namespace", "privilege_escalation"],
	"events": ["process_kprobe"],
}

alert contains msg if {
	ev := input.process_kprobe
	ev.policy_name == "default-system-changes"
	events.syscall_name(ev.function_name) == "unshare"
	ev.process.uid != 0
	msg := sprintf("%s (uid %d) created a user namespace", [ev.process.binary, ev.process.uid])
}
