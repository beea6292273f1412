package vigil.rules.reverse_shell

import data.vigil.lib.events

metadata := {
	"id": "VGL-EXEC-003",
	"name": "Reverse shell: standard input or output redirected to a socket",
	"description": "A shell, an interpreter or netcat duplicated a network socket onto its standard input or output, as bash -i >& /dev/tcp/HOST/PORT, python -c 'os.dup2(s.fileno(), 0)' or nc -e do before running a shell.",
	"severity": "critical",
	"mitre": {"tactic": "TA0002 Execution", "technique": "T1059 Command and Scripting Interpreter"},
	"tags": ["network", "shell"],
	"events": ["process_kprobe"],
}

alert contains msg if {
	ev := input.process_kprobe
	ev.policy_name == "default-detections"
	events.syscall_name(ev.function_name) in {"dup2", "dup3"}
	events.arg(ev, "oldfd").file_arg.path == "socket:"
	fd := events.arg(ev, "newfd").int_arg
	fd in {0, 1}
	suspicious(ev.process.binary)
	msg := sprintf("%s redirected its %s to a socket", [ev.process.binary, {0: "standard input", 1: "standard output"}[fd]])
}

suspicious(bin) if events.is_shell(bin)

suspicious(bin) if events.is_interpreter(bin)

suspicious(bin) if events.basename(bin) in events.netcats
