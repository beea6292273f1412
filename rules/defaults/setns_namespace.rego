package vigil.rules.setns_namespace

import data.vigil.lib.events

metadata := {
	"id": "VGL-PRIV-007",
	"name": "Process entered another namespace",
	"description": "setns into a mount, PID, user or other namespace by a program that is not a container runtime (nsenter -t 1 -m, a breakout tool joining the host's namespaces). Joining a network namespace by its type (CNI plugins, ip netns exec) is not reported.",
	"severity": "high",
	"mitre": {"tactic": "TA0004 Privilege Escalation", "technique": "T1611 Escape to Host"},
	"tags": ["namespace", "container"],
	"events": ["process_kprobe"],
}

alert contains msg if {
	ev := input.process_kprobe
	ev.policy_name == "default-system-changes"
	events.syscall_name(ev.function_name) == "setns"
	events.arg(ev, "nstype").int_arg != 1073741824 # CLONE_NEWNET
	not events.basename(ev.process.binary) in events.runtimes
	not startswith(ev.process.binary, "/memfd:runc")
	msg := sprintf("%s entered a namespace (%s)", [ev.process.binary, kind(events.arg(ev, "nstype").int_arg)])
}

# setns's nstype: the CLONE_NEW* flag of the namespace kind, 0 for any.
kinds := {
	0: "any kind", 128: "time", 131072: "mount", 33554432: "cgroup", 67108864: "UTS", 134217728: "IPC",
	268435456: "user", 536870912: "PID",
}

kind(t) := kinds[t]

default kind(_) := "several kinds"
