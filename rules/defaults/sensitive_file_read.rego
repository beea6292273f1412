package vigil.rules.sensitive_file_read

import data.vigil.lib.events

metadata := {
	"id": "VGL-CRED-001",
	"name": "Sensitive file read by an untrusted program",
	"description": "A credential file (shadow, sudoers, SSH keys, cloud or Kubernetes credentials) opened by a program that has no business reading it.",
	"severity": "high",
	"mitre": {"tactic": "TA0006 Credential Access", "technique": "T1003.008 /etc/passwd and /etc/shadow"},
	"tags": ["credentials", "file"],
	"events": ["process_kprobe"],
}

sensitive := [
	"/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/ssh/ssh_host_", "/root/.ssh/", "/root/.aws/",
	"/root/.config/gcloud/", "/root/.kube/config", "/var/run/secrets/kubernetes.io/",
]

# Programs whose job is to read these files.
trusted := {
	"sshd", "sshd-session", "sudo", "su", "login", "passwd", "chpasswd", "chage", "unix_chkpwd", "useradd",
	"usermod", "userdel", "groupadd", "groupmod", "gpasswd", "newgrp", "vipw", "pwck", "grpck", "cron", "crond",
	"systemd", "systemd-logind", "systemd-userdbd", "polkitd", "ssh", "ssh-keygen", "ssh-agent", "kubelet",
}

alert contains msg if {
	ev := input.process_kprobe
	ev.policy_name == "default-file-access"
	events.syscall_name(ev.function_name) == "openat"
	path := events.arg(ev, "filename").string_arg
	some prefix in sensitive
	startswith(path, prefix)
	not events.basename(ev.process.binary) in trusted
	msg := sprintf("%s opened %s", [ev.process.binary, path])
}
