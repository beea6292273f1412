package vigil.rules.rename_into_system_dir

import data.vigil.lib.events

metadata := {
	"id": "VGL-PERS-003",
	"name": "File moved into a system directory",
	"description": "A file renamed into a binary, library or configuration directory by a program that is not a package manager: a binary planted or replaced without ever being opened there for writing.",
	"severity": "medium",
	"mitre": {"tactic": "TA0005 Defense Evasion", "technique": "T1036.005 Match Legitimate Name or Location"},
	"tags": ["file", "persistence"],
	"events": ["process_kprobe"],
}

alert contains msg if {
	ev := input.process_kprobe
	ev.policy_name == "default-file-changes"
	events.syscall_name(ev.function_name) in {"rename", "renameat", "renameat2"}
	path := events.arg(ev, "path").string_arg
	some dir in events.system_dirs
	startswith(path, dir)
	not events.basename(ev.process.binary) in events.package_managers
	msg := sprintf("%s moved %s to %s", [ev.process.binary, events.abs(ev.process, events.arg(ev, "oldpath").string_arg), path])
}
