# Shared definitions of the default rules. Library modules (package
# vigil.lib.NAME) have no metadata and raise no alert.
package vigil.lib.events

# The event's own object, whatever its type.
event := input[k] if {
	some k in {"process_exec", "process_exit", "process_kprobe", "process_tracepoint", "process_lsm", "flow"}
	input[k]
}

# basename returns the last element of a path.
basename(path) := name if {
	parts := split(path, "/")
	name := parts[count(parts) - 1]
}

# busybox is not among them: every applet of a busybox image (ls, cat, ...)
# runs as /bin/busybox.
shells := {"sh", "bash", "dash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish", "ash"}

interpreters := {
	"python", "python2", "python3", "perl", "ruby", "php", "node", "nodejs", "lua", "awk", "gawk", "mawk", "tclsh",
}

netcats := {"nc", "ncat", "netcat", "nc.traditional", "nc.openbsd", "socat"}

is_shell(path) if basename(path) in shells

# Versioned interpreters (python3.11, perl5.36) count as their family.
is_interpreter(path) if basename(path) in interpreters

is_interpreter(path) if regex.match(`^(python|perl|ruby|php|node)[0-9.]*$`, basename(path))

# A process in a container: the event's process has a pod.
in_container(p) if p.pod.namespace

# container describes where a process in a container runs: its container's
# name when known, and its pod.
container(p) := sprintf("container %s of pod %s/%s", [p.pod.container.name, p.pod.namespace, p.pod.name]) if p.pod.container.name

container(p) := sprintf("pod %s/%s", [p.pod.namespace, p.pod.name]) if not p.pod.container.name

# The syscall a policy event hooked, without the architecture prefix
# (__x64_sys_openat -> openat).
syscall_name(fn) := trim_prefix(regex.replace(fn, `^__[a-z0-9]+_sys_`, ""), "sys_")

# Arguments of a policy event by label.
arg(ev, label) := a if {
	some a in ev.args
	a.label == label
}
