package vigil.rules.crypto_miner

import data.vigil.lib.events

metadata := {
	"id": "VGL-IMP-001",
	"name": "Crypto-miner started",
	"description": "A known miner (xmrig, cpuminer, ...) started, or a program given a Stratum mining-pool address (stratum+tcp://, stratum+ssl://) or a well-known pool's host name.",
	"severity": "high",
	"mitre": {"tactic": "TA0040 Impact", "technique": "T1496 Resource Hijacking"},
	"tags": ["miner", "impact"],
	"events": ["process_exec"],
}

miners := {"xmrig", "xmr-stak", "cpuminer", "minerd", "cgminer", "bfgminer", "ethminer", "nbminer", "t-rex", "lolminer", "kswapd0"}

# Stratum, the mining pools' protocol, in a pool address given on the
# command line (-o stratum+tcp://pool:3333), and well-known pools' hosts.
pool_markers := [
	"stratum+tcp://", "stratum+ssl://", "stratum+tls://", "stratum2+tcp://", "pool.minexmr.com", "xmrpool.eu",
	"supportxmr.com", "nanopool.org", "moneroocean.stream", "2miners.com", "f2pool.com", "c3pool.com", "hashvault.pro",
	"minergate.com", "nicehash.com",
]

alert contains msg if {
	p := input.process_exec.process
	events.basename(p.binary) in miners
	msg := sprintf("miner %s started", [p.binary])
}

alert contains msg if {
	p := input.process_exec.process
	some marker in pool_markers
	contains(p.arguments, marker)
	not events.basename(p.binary) in miners
	msg := sprintf("%s given mining pool %s: %s", [p.binary, marker, p.arguments])
}
