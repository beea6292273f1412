package vigil.rules.netcat_remote_execution

import data.vigil.lib.events

metadata := {
	"id": "VGL-EXEC-002",
	"name": "Netcat or socat remote code execution",
	"description": "netcat run with -e/-c or socat with an exec or system address: a program wired to a network connection, the classic bind or reverse shell.",
	"severity": "critical",
	"mitre": {"tactic": "TA0002 Execution", "technique": "T1059 Command and Scripting Interpreter"},
	"tags": ["network", "shell"],
	"events": ["process_exec"],
}

alert contains msg if {
	p := input.process_exec.process
	events.basename(p.binary) in events.netcats
	events.basename(p.binary) != "socat"
	regex.match(`(^|\s)(-[A-Za-z]*[ec]|--exec|--sh-exec|--lua-exec)(\s|=|$)`, p.arguments)
	msg := sprintf("%s %s", [p.binary, p.arguments])
}

alert contains msg if {
	p := input.process_exec.process
	events.basename(p.binary) == "socat"
	regex.match(`(?i)(^|[\s,!])(exec|system):`, p.arguments)
	msg := sprintf("%s %s", [p.binary, p.arguments])
}
