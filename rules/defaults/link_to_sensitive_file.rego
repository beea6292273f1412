package vigil.rules.link_to_sensitive_file

import data.vigil.lib.events

metadata := {
	"id": "VGL-CRED-003",
	"name": "Link created to a sensitive file",
	"description": "A hard or symbolic link made to a credential file (shadow, sudoers, SSH keys, cloud or Kubernetes credentials): reading the file through the link evades rules keyed on its path.",
	"severity": "high",
	"mitre": {"tactic": "TA0006 Credential Access", "technique": "T1003.008 /etc/passwd and /etc/shadow"},
	"tags": ["credentials", "file"],
	"events": ["process_kprobe"],
}

sensitive := [
	"/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/ssh/ssh_host_", "/root/.ssh/", "/root/.aws/", "/root/.kube/",
	"/var/run/secrets/kubernetes.io/", "/run/secrets/kubernetes.io/",
]

names := {"shadow", "gshadow", "sudoers", "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "authorized_keys"}

kinds := {"linkat": "hard link", "link": "hard link", "symlinkat": "symbolic link", "symlink": "symbolic link"}

alert contains msg if {
	ev := input.process_kprobe
	ev.policy_name == "default-file-changes"
	kind := kinds[events.syscall_name(ev.function_name)]
	target := events.arg(ev, "target").string_arg
	sensitive_target(ev.process, target)
	not events.basename(ev.process.binary) in events.package_managers
	msg := sprintf("%s made a %s %s to %s", [ev.process.binary, kind, events.arg(ev, "path").string_arg, target])
}

# A symbolic link's target is relative to the link, a hard link's to the
# working directory; either way its last component names the file.
sensitive_target(_, target) if events.basename(target) in names

sensitive_target(p, target) if {
	some prefix in sensitive
	startswith(events.abs(p, target), prefix)
}
