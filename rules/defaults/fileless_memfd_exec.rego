package vigil.rules.fileless_memfd_exec

import data.vigil.lib.events

metadata := {
	"id": "VGL-DEF-001",
	"name": "Fileless execution from memory",
	"description": "A program executed from an anonymous memory file (memfd_create then execve of /proc/self/fd/N): the payload never touches the disk.",
	"severity": "high",
	"mitre": {"tactic": "TA0005 Defense Evasion", "technique": "T1620 Reflective Code Loading"},
	"tags": ["fileless", "execution"],
	"events": ["process_exec"],
}

# Container runtimes re-execute a sealed in-memory copy of themselves
# (runc's protection against overwriting its binary): their shims are the
# parents of those execs.
runtimes := {"containerd-shim", "containerd-shim-runc-v2", "conmon", "runc", "crun"}

alert contains msg if {
	p := input.process_exec.process
	p.binary_properties.memfd == true
	not events.basename(object.get(input.process_exec, ["parent", "binary"], "")) in runtimes
	msg := sprintf("%s executed from an anonymous memory file", [p.binary])
}
