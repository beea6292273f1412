package vigil.rules.shell_history_removed

import data.vigil.lib.events

metadata := {
	"id": "VGL-DEF-003",
	"name": "Shell history removed or renamed",
	"description": "A shell history file (.bash_history, .zsh_history, .ash_history, ...) removed or moved away: tracks being covered.",
	"severity": "medium",
	"mitre": {"tactic": "TA0005 Defense Evasion", "technique": "T1070.003 Clear Command History"},
	"tags": ["file", "defense_evasion"],
	"events": ["process_kprobe"],
}

alert contains msg if {
	ev := input.process_kprobe
	ev.policy_name == "default-file-changes"
	events.syscall_name(ev.function_name) in {"unlink", "unlinkat"}
	path := events.arg(ev, "path").string_arg
	endswith(path, "_history")
	msg := sprintf("%s removed %s", [ev.process.binary, events.abs(ev.process, path)])
}

alert contains msg if {
	ev := input.process_kprobe
	ev.policy_name == "default-file-changes"
	events.syscall_name(ev.function_name) in {"rename", "renameat", "renameat2"}
	path := events.arg(ev, "oldpath").string_arg
	endswith(path, "_history")
	msg := sprintf("%s moved %s away", [ev.process.binary, events.abs(ev.process, path)])
}
