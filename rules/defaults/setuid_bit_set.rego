package vigil.rules.setuid_bit_set

import data.vigil.lib.events

metadata := {
	"id": "VGL-PRIV-004",
	"name": "Set-user-ID or set-group-ID bit set",
	"description": "chmod, fchmodat or fchmod gave a file the set-user-ID or set-group-ID bit, outside the package managers: a backdoor shell or a privilege escalation prepared.",
	"severity": "high",
	"mitre": {"tactic": "TA0004 Privilege Escalation", "technique": "T1548.001 Setuid and Setgid"},
	"tags": ["file", "privilege_escalation"],
	"events": ["process_kprobe"],
}

alert contains msg if {
	ev := input.process_kprobe
	ev.policy_name == "default-file-changes"
	events.syscall_name(ev.function_name) in {"chmod", "fchmodat", "fchmod"}
	mode := events.arg(ev, "mode").uint_arg
	bits.and(mode, 3072) != 0 # S_ISUID | S_ISGID
	not events.basename(ev.process.binary) in events.package_managers
	msg := sprintf("%s set mode %s on %s", [ev.process.binary, octal(mode), target(ev)])
}

octal(mode) := sprintf("%o", [mode])

target(ev) := events.abs(ev.process, events.arg(ev, "path").string_arg)

target(ev) := events.arg(ev, "file").file_arg.path if events.syscall_name(ev.function_name) == "fchmod"
