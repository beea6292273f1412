package vigil.rules.drop_and_execute

import data.vigil.lib.events

metadata := {
	"id": "VGL-EXEC-005",
	"name": "New binary executed in a container",
	"description": "A container ran a program that is not part of its image: the file is on the overlay's upper layer, written after the container started.",
	"severity": "high",
	"mitre": {"tactic": "TA0002 Execution", "technique": "T1105 Ingress Tool Transfer"},
	"tags": ["container", "execution"],
	"events": ["process_exec"],
}

alert contains msg if {
	p := input.process_exec.process
	events.in_container(p)
	p.binary_properties.upper_layer == true
	msg := sprintf("%s, not in the image, executed in %s", [p.binary, events.container(p)])
}
