package vigil.rules.fileless_memfd_exec

metadata := {
	"id": "VGL-DEF-001",
	"name": "Fileless execution from memory",
	"description": "A program executed from an anonymous memory file (memfd_create then execve of /proc/self/fd/N): the payload never touches the disk.",
	"severity": "high",
	"mitre": {"tactic": "TA0005 Defense Evasion", "technique": "T1620 Reflective Code Loading"},
	"tags": ["fileless", "execution"],
	"events": ["process_exec"],
}

alert contains msg if {
	p := input.process_exec.process
	p.binary_properties.memfd == true
	msg := sprintf("%s executed from an anonymous memory file", [p.binary])
}
