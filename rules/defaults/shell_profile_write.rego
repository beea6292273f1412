package vigil.rules.shell_profile_write

import data.vigil.lib.events

metadata := {
	"id": "VGL-PERS-006",
	"name": "Shell start-up file changed",
	"description": "A user's shell start-up file (.bashrc, .profile, .bash_profile, .zshrc, ...) opened for writing by a program other than an editor or the account tools: code that runs at every login.",
	"severity": "medium",
	"mitre": {"tactic": "TA0003 Persistence", "technique": "T1546.004 Unix Shell Configuration Modification"},
	"tags": ["shell", "persistence"],
	"events": ["process_kprobe"],
}

profiles := {".bashrc", ".bash_profile", ".bash_login", ".profile", ".zshrc", ".zprofile", ".zshenv"}

# Editors change these files on their users' behalf; useradd copies them
# from /etc/skel.
editors := {
	"vi", "vim", "vim.basic", "vim.tiny", "nvim", "nano", "emacs", "code", "useradd", "usermod", "dpkg", "rpm",
	"cloud-init",
}

alert contains msg if {
	ev := input.process_kprobe
	ev.policy_name == "default-file-access"
	events.syscall_name(ev.function_name) == "openat"
	path := events.arg(ev, "filename").string_arg
	events.basename(path) in profiles
	bits.and(events.arg(ev, "flags").int_arg, 579) != 0 # O_WRONLY | O_RDWR | O_CREAT | O_TRUNC
	not events.basename(ev.process.binary) in editors
	msg := sprintf("%s opened %s for writing", [ev.process.binary, events.abs(ev.process, path)])
}
