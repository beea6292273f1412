package vigil.rules.search_private_keys

import data.vigil.lib.events

metadata := {
	"id": "VGL-CRED-002",
	"name": "Search for private keys or passwords",
	"description": "grep, find or a similar tool run to look for private keys, passwords or cloud credentials.",
	"severity": "medium",
	"mitre": {"tactic": "TA0006 Credential Access", "technique": "T1552.001 Credentials In Files"},
	"tags": ["credentials", "discovery"],
	"events": ["process_exec"],
}

searchers := {"grep", "egrep", "fgrep", "rg", "ag", "ack", "find", "locate", "mlocate", "plocate", "fd", "fdfind"}

pattern := `(?i)(id_rsa|id_dsa|id_ecdsa|id_ed25519|authorized_keys|\.pem\b|\.p12\b|\.pfx\b|private[ _-]?key|BEGIN [A-Z ]*PRIVATE|passwords?\b|passw(or)?d\s*[=:]|aws_secret|secret_access_key|\.aws/credentials|\.docker/config\.json|\.kube/config)`

alert contains msg if {
	p := input.process_exec.process
	events.basename(p.binary) in searchers
	regex.match(pattern, p.arguments)
	msg := sprintf("%s %s", [p.binary, p.arguments])
}
