package vigil.rules.sensitive_file_read

import data.vigil.lib.events

metadata := {
	"id": "VGL-CRED-001",
	"name": "Sensitive file read by an untrusted program",
	"description": "A credential file (shadow, sudoers, SSH keys, cloud or Kubernetes credentials) opened by a program that has no business reading it, whether named directly, relative to the working directory, or through dot-dot components (/etc/../etc/shadow).",
	"severity": "high",
	"mitre": {"tactic": "TA0006 Credential Access", "technique": "T1003.008 /etc/passwd and /etc/shadow"},
	"tags": ["credentials", "file"],
	"events": ["process_kprobe"],
}

sensitive := [
	"/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/ssh/ssh_host_", "/root/.ssh/", "/root/.aws/",
	"/root/.config/gcloud/", "/root/.kube/config", "/var/run/secrets/kubernetes.io/",
]

# The last components of credential files, wherever they are; a path with
# one of them that walks up a directory is a traversal.
names := {"shadow", "gshadow", "sudoers", "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519"}

# Programs whose job is to read these files.
trusted := {
	"sshd", "sshd-session", "sudo", "su", "login", "passwd", "chpasswd", "chage", "unix_chkpwd", "useradd",
	"usermod", "userdel", "groupadd", "groupmod", "gpasswd", "newgrp", "vipw", "pwck", "grpck", "cron", "crond",
	"systemd", "systemd-logind", "systemd-userdbd", "polkitd", "ssh", "ssh-keygen", "ssh-agent", "ssh-add", "kubelet",
}

# Kubernetes clients read the kubeconfig they are given: that is their job,
# not a theft (they still alert on every other credential file).
kube_clients := {"kubectl", "kubeadm", "helm", "k9s", "oc", "kustomize", "kubectx", "kubens", "flux", "argocd"}

alert contains msg if {
	ev := input.process_kprobe
	ev.policy_name == "default-file-access"
	events.syscall_name(ev.function_name) == "openat"
	given := events.arg(ev, "filename").string_arg
	path := events.abs(ev.process, given)
	some prefix in sensitive
	startswith(path, prefix)
	not events.basename(ev.process.binary) in trusted
	not kubeconfig_of_client(ev.process, path)
	msg := sprintf("%s opened %s%s", [ev.process.binary, path, as_given(given, path)])
}

alert contains msg if {
	ev := input.process_kprobe
	ev.policy_name == "default-file-access"
	events.syscall_name(ev.function_name) == "openat"
	given := events.arg(ev, "filename").string_arg
	events.basename(given) in names
	path := events.abs(ev.process, given)
	contains(path, "/../")
	not events.basename(ev.process.binary) in trusted
	msg := sprintf("%s opened %s through a directory traversal", [ev.process.binary, path])
}

# Users' SSH keys, in any home directory.
alert contains msg if {
	ev := input.process_kprobe
	ev.policy_name == "default-file-access"
	events.syscall_name(ev.function_name) == "openat"
	given := events.arg(ev, "filename").string_arg
	events.basename(given) in names
	path := events.abs(ev.process, given)
	contains(path, "/.ssh/")
	not contains(path, "/../")
	not startswith(path, "/root/.ssh/")
	not events.basename(ev.process.binary) in trusted
	msg := sprintf("%s opened %s", [ev.process.binary, path])
}

kubeconfig_of_client(p, path) if {
	startswith(path, "/root/.kube/")
	events.basename(p.binary) in kube_clients
}

as_given(given, path) := "" if given == path

as_given(given, path) := sprintf(" (as %s)", [given]) if given != path
