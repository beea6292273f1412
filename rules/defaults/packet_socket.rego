package vigil.rules.packet_socket

import data.vigil.lib.events

metadata := {
	"id": "VGL-DISC-002",
	"name": "Packet socket created",
	"description": "A process opened an AF_PACKET socket, which sees and forges raw frames: sniffing, ARP spoofing, or a covert channel.",
	"severity": "medium",
	"mitre": {"tactic": "TA0006 Credential Access", "technique": "T1040 Network Sniffing"},
	"tags": ["network"],
	"events": ["process_kprobe"],
}

alert contains msg if {
	ev := input.process_kprobe
	ev.policy_name == "default-detections"
	events.syscall_name(ev.function_name) == "socket"
	events.arg(ev, "family").int_arg == 17
	msg := sprintf("%s created a packet socket", [ev.process.binary])
}
