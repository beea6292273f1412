package vigil.rules.mkdir_binary_dir

import data.vigil.lib.events

metadata := {
	"id": "VGL-PERS-004",
	"name": "Directory created below a binary directory",
	"description": "A directory made below /bin, /sbin, /usr/bin, /usr/sbin or /usr/local/bin by a program that is not a package manager: a place to hide tools on the PATH.",
	"severity": "medium",
	"mitre": {"tactic": "TA0005 Defense Evasion", "technique": "T1036.005 Match Legitimate Name or Location"},
	"tags": ["file", "persistence"],
	"events": ["process_kprobe"],
}

alert contains msg if {
	ev := input.process_kprobe
	ev.policy_name == "default-file-changes"
	events.syscall_name(ev.function_name) in {"mkdir", "mkdirat"}
	path := events.arg(ev, "path").string_arg
	not events.basename(ev.process.binary) in events.package_managers
	msg := sprintf("%s created directory %s", [ev.process.binary, path])
}
