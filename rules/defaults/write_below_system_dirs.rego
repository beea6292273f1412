package vigil.rules.write_below_system_dirs

import data.vigil.lib.events

metadata := {
	"id": "VGL-PERS-001",
	"name": "Write below /etc or a binary directory",
	"description": "A file below /etc or a binary or library directory opened for writing by a program that is not a package manager: persistence, a backdoored binary, or a changed configuration.",
	"severity": "medium",
	"mitre": {"tactic": "TA0003 Persistence", "technique": "T1543 Create or Modify System Process"},
	"tags": ["file", "persistence"],
	"events": ["process_kprobe"],
}

dirs := ["/etc/", "/bin/", "/sbin/", "/usr/bin/", "/usr/sbin/", "/usr/local/bin/", "/usr/local/sbin/", "/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/", "/boot/"]

# O_WRONLY | O_RDWR | O_CREAT | O_TRUNC
write_flags := 579

package_managers := {
	"dpkg", "apt", "apt-get", "aptitude", "unattended-upgrade", "rpm", "yum", "dnf", "microdnf", "zypper", "apk",
	"pacman", "ldconfig", "ldconfig.real", "update-alternatives", "update-ca-certificates", "systemd", "systemd-tmpfiles",
}

alert contains msg if {
	ev := input.process_kprobe
	ev.policy_name == "default-file-access"
	events.syscall_name(ev.function_name) == "openat"
	path := events.arg(ev, "filename").string_arg
	flags := events.arg(ev, "flags").int_arg
	bits.and(flags, write_flags) != 0
	some dir in dirs
	startswith(path, dir)
	not events.basename(ev.process.binary) in package_managers
	msg := sprintf("%s opened %s for writing", [ev.process.binary, path])
}
