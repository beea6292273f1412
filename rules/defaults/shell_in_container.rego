package vigil.rules.shell_in_container

import data.vigil.lib.events

metadata := {
	"id": "VGL-EXEC-001",
	"name": "Terminal shell in a container",
	"description": "An interactive shell started in a container, typically kubectl exec -it or an attacker's foothold.",
	"severity": "medium",
	"mitre": {"tactic": "TA0002 Execution", "technique": "T1059.004 Unix Shell"},
	"tags": ["container", "shell"],
	"events": ["process_exec"],
}

alert contains msg if {
	p := input.process_exec.process
	events.is_shell(p.binary)
	events.in_container(p)
	# A shell running a command (sh -c ...) or a script is not interactive.
	args := object.get(p, "arguments", "")
	not regex.match(`(^|\s)-[A-Za-z]*c(\s|$)`, args)
	not regex.match(`(^|\s)[^-\s]`, args)
	# Shells started by shells are part of a session already reported.
	not events.is_shell(object.get(input.process_exec, ["parent", "binary"], ""))
	msg := sprintf("shell %s started in %s", [p.binary, events.container(p)])
}
