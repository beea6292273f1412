package vigil.rules.ssh_nonstandard_port

import data.vigil.lib.events

metadata := {
	"id": "VGL-C2-001",
	"name": "SSH to a non-standard port",
	"description": "ssh, scp or sftp connected to a port other than 22: a tunnel or a command-and-control channel dressed as administration.",
	"severity": "medium",
	"mitre": {"tactic": "TA0011 Command and Control", "technique": "T1571 Non-Standard Port"},
	"tags": ["network", "ssh"],
	"events": ["flow"],
}

clients := {"ssh", "scp", "sftp", "autossh"}

alert contains msg if {
	f := input.flow
	f.traffic_direction == "EGRESS"
	events.basename(f.process.binary) in clients
	port := f.l4.TCP.destination_port
	port != 22
	msg := sprintf("%s connected to %s:%d", [f.process.binary, f.IP.destination, port])
}
