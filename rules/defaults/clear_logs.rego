package vigil.rules.clear_logs

import data.vigil.lib.events

metadata := {
	"id": "VGL-DEF-002",
	"name": "Logs cleared",
	"description": "A log below /var/log truncated or removed, or shredded, by a program other than the log rotators: tracks being covered.",
	"severity": "high",
	"mitre": {"tactic": "TA0005 Defense Evasion", "technique": "T1070.002 Clear Linux or Mac System Logs"},
	"tags": ["log", "defense_evasion"],
	"events": ["process_kprobe", "process_exec"],
}

rotators := {"logrotate", "savelog", "rsyslogd", "syslog-ng", "systemd-journald", "journalctl", "dpkg", "apt", "apt-get"}

alert contains msg if {
	ev := input.process_kprobe
	ev.policy_name == "default-file-access"
	events.syscall_name(ev.function_name) == "openat"
	path := events.arg(ev, "filename").string_arg
	startswith(path, "/var/log/")
	bits.and(events.arg(ev, "flags").int_arg, 512) != 0 # O_TRUNC
	not events.basename(ev.process.binary) in rotators
	msg := sprintf("%s truncated %s", [ev.process.binary, path])
}

alert contains msg if {
	ev := input.process_kprobe
	ev.policy_name == "default-detections"
	events.syscall_name(ev.function_name) in {"unlinkat", "unlink"}
	path := events.arg(ev, "path").string_arg
	startswith(path, "/var/log/")
	not events.basename(ev.process.binary) in rotators
	msg := sprintf("%s removed %s", [ev.process.binary, path])
}

alert contains msg if {
	p := input.process_exec.process
	events.basename(p.binary) in {"shred", "truncate", "wipe", "srm"}
	contains(p.arguments, "/var/log/")
	msg := sprintf("%s %s", [p.binary, p.arguments])
}
