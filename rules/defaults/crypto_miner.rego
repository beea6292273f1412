package vigil.rules.crypto_miner

import data.vigil.lib.events

metadata := {
	"id": "VGL-IMP-001",
	"name": "Crypto-miner started",
	"description": "A known miner (xmrig, cpuminer, ...) started, or a program given a Stratum mining-pool address (stratum+tcp://, stratum+ssl://).",
	"severity": "high",
	"mitre": {"tactic": "TA0040 Impact", "technique": "T1496 Resource Hijacking"},
	"tags": ["miner", "impact"],
	"events": ["process_exec"],
}

miners := {"xmrig", "xmr-stak", "cpuminer", "minerd", "cgminer", "bfgminer", "ethminer", "nbminer", "t-rex", "lolminer", "kswapd0"}

alert contains msg if {
	p := input.process_exec.process
	events.basename(p.binary) in miners
	msg := sprintf("miner %s started", [p.binary])
}

# Stratum, the mining pools' protocol, in a pool address given on the
# command line (-o stratum+tcp://pool:3333, stratum+ssl://, stratum2+tcp://).
# One substring test per exec: pools' host names given without a scheme are
# not looked for.
alert contains msg if {
	p := input.process_exec.process
	contains(p.arguments, "stratum")
	regex.match(`stratum2?\+(tcp|ssl|tls)://`, p.arguments)
	not events.basename(p.binary) in miners
	msg := sprintf("%s given a Stratum mining pool: %s", [p.binary, p.arguments])
}
