package vigil.rules.exec_from_tmp

metadata := {
	"id": "VGL-EXEC-004",
	"name": "Execution from a temporary directory",
	"description": "A program run from /tmp, /var/tmp or /dev/shm, where downloaded payloads land.",
	"severity": "medium",
	"mitre": {"tactic": "TA0002 Execution", "technique": "T1204.002 Malicious File"},
	"tags": ["file", "execution"],
	"events": ["process_exec"],
}

dirs := ["/tmp/", "/var/tmp/", "/dev/shm/", "/run/shm/"]

alert contains msg if {
	p := input.process_exec.process
	some dir in dirs
	startswith(p.binary, dir)
	msg := sprintf("%s executed from %s", [p.binary, dir])
}
