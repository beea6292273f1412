package vigil.rules.network_tool

import data.vigil.lib.events

metadata := {
	"id": "VGL-DISC-003",
	"name": "Network scanner or sniffer run",
	"description": "A network scanning, sniffing or spoofing tool (nmap, masscan, zmap, hping3, tcpdump, tshark, ettercap, ...) started, on the host or in a container; netcat and socat have their own rule.",
	"severity": "low",
	"mitre": {"tactic": "TA0007 Discovery", "technique": "T1046 Network Service Discovery"},
	"tags": ["network", "discovery"],
	"events": ["process_exec"],
}

tools := {
	"nmap", "nping", "masscan", "zmap", "hping", "hping2", "hping3", "tcpdump", "tshark", "dumpcap", "ettercap",
	"arpspoof", "bettercap", "responder", "fping", "arp-scan", "netdiscover",
}

alert contains msg if {
	p := input.process_exec.process
	events.basename(p.binary) in tools
	msg := sprintf("%s %s run %s", [p.binary, object.get(p, "arguments", ""), where(p)])
}

where(p) := sprintf("in %s", [events.container(p)]) if events.in_container(p)

default where(_) := "on the host"
