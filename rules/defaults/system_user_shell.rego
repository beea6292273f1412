package vigil.rules.system_user_shell

import data.vigil.lib.events

metadata := {
	"id": "VGL-PRIV-009",
	"name": "System user ran an interactive shell",
	"description": "An interactive shell (no -c, no script) started by a system account (uid 1 to 999: daemon, www-data, postgres, ...), which log in to nothing: a service account taken over.",
	"severity": "high",
	"mitre": {"tactic": "TA0001 Initial Access", "technique": "T1078.003 Local Accounts"},
	"tags": ["shell", "account"],
	"events": ["process_exec"],
}

alert contains msg if {
	p := input.process_exec.process
	events.is_shell(p.binary)
	p.uid > 0
	p.uid < 1000
	args := object.get(p, "arguments", "")
	not regex.match(`(^|\s)-[A-Za-z]*c(\s|$)`, args)
	not regex.match(`(^|\s)[^-\s]`, args)
	msg := sprintf("uid %d ran interactive shell %s", [p.uid, p.binary])
}
