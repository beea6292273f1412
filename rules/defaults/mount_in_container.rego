package vigil.rules.mount_in_container

import data.vigil.lib.events

metadata := {
	"id": "VGL-PRIV-005",
	"name": "File system mounted in a container, or debugfs mounted",
	"description": "mount or fsopen called from inside a container (only a privileged one can), or debugfs mounted anywhere: mounting the host's disk or debugfs is how a privileged container reaches the host.",
	"severity": "high",
	"mitre": {"tactic": "TA0004 Privilege Escalation", "technique": "T1611 Escape to Host"},
	"tags": ["container", "mount"],
	"events": ["process_kprobe"],
}

alert contains msg if {
	ev := input.process_kprobe
	ev.policy_name == "default-system-changes"
	events.syscall_name(ev.function_name) in {"mount", "fsopen"}
	events.in_container(ev.process)
	not events.basename(ev.process.binary) in events.runtimes
	msg := sprintf("%s mounted %s in %s", [ev.process.binary, what(ev), events.container(ev.process)])
}

alert contains msg if {
	ev := input.process_kprobe
	ev.policy_name == "default-system-changes"
	events.syscall_name(ev.function_name) in {"mount", "fsopen"}
	events.arg(ev, "fstype").string_arg == "debugfs"
	not events.in_container(ev.process)
	msg := sprintf("%s mounted debugfs", [ev.process.binary])
}

what(ev) := sprintf("%s (%s) on %s", [events.arg(ev, "source").string_arg, fstype, events.arg(ev, "target").string_arg]) if {
	fstype := events.arg(ev, "fstype").string_arg
	fstype != ""
}

# No type: a remount, a bind mount or a propagation change.
what(ev) := sprintf("%s again (remount, bind or propagation change)", [events.arg(ev, "target").string_arg]) if {
	events.syscall_name(ev.function_name) == "mount"
	events.arg(ev, "fstype").string_arg == ""
}

what(ev) := sprintf("a %s file system", [events.arg(ev, "fstype").string_arg]) if events.syscall_name(ev.function_name) == "fsopen"
