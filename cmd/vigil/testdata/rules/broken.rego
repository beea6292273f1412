package vigil.rules.broken

metadata := {"id": "BROKEN-1", "name": "n", "description": "d", "severity": "urgent",
	"mitre": {"tactic": "t", "technique": "x"}, "events": ["process_exec"]}

alert contains "x" if input.process_exec
