package vigil.rules.setuid_exec_in_container

import data.vigil.lib.events

metadata := {
	"id": "VGL-PRIV-003",
	"name": "Set-user-ID or set-group-ID program run in a container",
	"description": "A process in a container executed a set-user-ID or set-group-ID binary; containers rarely need them, and attackers use them to regain privileges.",
	"severity": "medium",
	"mitre": {"tactic": "TA0004 Privilege Escalation", "technique": "T1548.001 Setuid and Setgid"},
	"tags": ["container", "privilege_escalation"],
	"events": ["process_exec"],
}

alert contains msg if {
	p := input.process_exec.process
	events.in_container(p)
	some bit in ["setuid", "setgid"]
	is_number(p.binary_properties[bit])
	msg := sprintf("%s (%s %d) executed in %s", [p.binary, bit, p.binary_properties[bit], events.container(p)])
}
