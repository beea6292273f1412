package vigil.rules.kernel_module_load

import data.vigil.lib.events

metadata := {
	"id": "VGL-PERS-002",
	"name": "Kernel module loaded",
	"description": "A kernel module loaded with init_module or finit_module: rootkits enter the kernel this way.",
	"severity": "high",
	"mitre": {"tactic": "TA0003 Persistence", "technique": "T1547.006 Kernel Modules and Extensions"},
	"tags": ["kernel"],
	"events": ["process_kprobe"],
}

alert contains msg if {
	ev := input.process_kprobe
	ev.policy_name == "default-kernel-modules"
	name := events.syscall_name(ev.function_name)
	name in {"finit_module", "init_module"}
	msg := sprintf("%s called %s%s", [ev.process.binary, name, module(ev)])
}

module(ev) := sprintf(" on %s", [events.arg(ev, "module").file_arg.path])

default module(_) := ""
