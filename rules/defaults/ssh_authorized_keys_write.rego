package vigil.rules.ssh_authorized_keys_write

import data.vigil.lib.events

metadata := {
	"id": "VGL-PERS-005",
	"name": "SSH authorized keys changed",
	"description": "An authorized_keys file opened for writing by a program other than the account tools: a key added to log in later.",
	"severity": "high",
	"mitre": {"tactic": "TA0003 Persistence", "technique": "T1098.004 SSH Authorized Keys"},
	"tags": ["ssh", "persistence"],
	"events": ["process_kprobe"],
}

account_tools := {"sshd", "sshd-session", "ssh-keygen", "useradd", "usermod", "dpkg", "rpm", "cloud-init", "google_guest_agent", "waagent"}

alert contains msg if {
	ev := input.process_kprobe
	ev.policy_name == "default-file-access"
	events.syscall_name(ev.function_name) == "openat"
	path := events.arg(ev, "filename").string_arg
	events.basename(path) in {"authorized_keys", "authorized_keys2"}
	bits.and(events.arg(ev, "flags").int_arg, 579) != 0 # O_WRONLY | O_RDWR | O_CREAT | O_TRUNC
	not events.basename(ev.process.binary) in account_tools
	msg := sprintf("%s opened %s for writing", [ev.process.binary, events.abs(ev.process, path)])
}
