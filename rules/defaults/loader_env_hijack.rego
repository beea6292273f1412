package vigil.rules.loader_env_hijack

import data.vigil.lib.events

metadata := {
	"id": "VGL-DEF-005",
	"name": "Dynamic loader hijacked through the environment",
	"description": "A program started with LD_PRELOAD or LD_AUDIT naming a library the usual tools do not preload, or with GLIBC_TUNABLES shaped like the CVE-2023-4911 overflow or given to a set-id program: code injected into the program and everything it starts, or privileges taken through the loader.",
	"severity": "high",
	"mitre": {"tactic": "TA0005 Defense Evasion", "technique": "T1574.006 Hijack Execution Flow: Dynamic Linker Hijacking"},
	"tags": ["loader", "injection", "environment"],
	"events": ["process_exec"],
}

# Libraries ordinary tools preload: fakeroot, faketime, stdbuf, eatmydata,
# memory allocators and sanitizers.
benign_library := `^lib(fakeroot|faketime|stdbuf|eatmydata|jemalloc|tcmalloc|mimalloc|asan|tsan|ubsan|lsan|gtk3-nocsd)([-_.][-_.a-zA-Z0-9]*)?\.so`

# A variable is inherited when the parent was started with the same value:
# it is reported where it was set, not on every process below.
inherited(parent_env, v) if {
	some w in parent_env
	w.Key == v.Key
	w.Value == v.Value
}

alert contains msg if {
	e := input.process_exec
	e.process.environment_variables # indexed: most execs have none
	some v in e.process.environment_variables
	v.Key in {"LD_PRELOAD", "LD_AUDIT"}
	not inherited(object.get(e, ["parent", "environment_variables"], []), v)
	some lib in regex.split(`[ :]+`, v.Value)
	lib != ""
	not regex.match(benign_library, events.basename(lib))
	msg := sprintf("%s started with %s=%s", [e.process.binary, v.Key, v.Value])
}

alert contains msg if {
	e := input.process_exec
	e.process.environment_variables # indexed: most execs have none
	some v in e.process.environment_variables
	v.Key == "GLIBC_TUNABLES"
	not inherited(object.get(e, ["parent", "environment_variables"], []), v)
	suspicious_tunables(e.process, v.Value)
	msg := sprintf("%s started with GLIBC_TUNABLES=%s", [e.process.binary, v.Value])
}

# A tunable whose value holds another assignment (the CVE-2023-4911
# overflow's shape), or any tunables given to a set-id program, whose
# loader parses them with raised privileges.
suspicious_tunables(_, value) if regex.match(`=[^:]*=`, value)

suspicious_tunables(p, _) if object.get(p, ["binary_properties", "setuid"], null) != null

suspicious_tunables(p, _) if object.get(p, ["binary_properties", "setgid"], null) != null
