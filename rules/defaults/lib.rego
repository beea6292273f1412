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

# A process in a container: the event's process has a pod, or the kernel
# says so: its PID namespace is not the host's (Docker, Podman, a plain
# unshare --pid). The mount namespace alone does not count: systemd gives
# services their own (PrivateTmp, ProtectSystem).
in_container(p) if p.pod.namespace

in_container(p) if p.ns.pid.is_host == false

# container describes where a process in a container runs: its container's
# name when known, and its pod; without a pod, its PID namespace.
container(p) := sprintf("container %s of pod %s/%s", [p.pod.container.name, p.pod.namespace, p.pod.name]) if p.pod.container.name

container(p) := sprintf("pod %s/%s", [p.pod.namespace, p.pod.name]) if {
	p.pod.namespace
	not p.pod.container.name
}

container(p) := sprintf("a container (PID namespace %d)", [p.ns.pid.inum]) if {
	not p.pod.namespace
	p.ns.pid.is_host == false
}

# abs is a path a process passed made absolute: a relative one joined with
# the process's working directory (as of its exec: a later chdir is not
# seen). Dot-dot components are kept as written.
abs(p, path) := path if startswith(path, "/")

abs(p, path) := concat("/", [trim_suffix(p.cwd, "/"), path]) if not startswith(path, "/")

# script is the file a shell or an interpreter runs: its first argument
# when that is not an option (the kernel puts the script's path there when
# a script is executed through its #! line), made absolute.
script(p) := abs(p, first) if {
	first := regex.replace(p.arguments, `\s.*$`, "")
	first != ""
	not startswith(first, "-")
	interpreted(p.binary)
}

interpreted(bin) if is_shell(bin)

interpreted(bin) if is_interpreter(bin)

# System directories: binaries, libraries, configuration, boot.
system_dirs := [
	"/etc/", "/bin/", "/sbin/", "/usr/bin/", "/usr/sbin/", "/usr/local/bin/", "/usr/local/sbin/", "/lib/", "/lib64/",
	"/usr/lib/", "/usr/lib64/", "/boot/",
]

# Programs whose job is to change the system directories.
package_managers := {
	"dpkg", "apt", "apt-get", "aptitude", "unattended-upgrade", "rpm", "yum", "dnf", "microdnf", "zypper", "apk",
	"pacman", "ldconfig", "ldconfig.real", "update-alternatives", "update-ca-certificates", "systemd", "systemd-tmpfiles",
}

# Container runtimes: they mount, enter namespaces and run sealed copies of
# themselves when they start containers.
runtimes := {
	"runc", "crun", "youki", "containerd", "containerd-shim", "containerd-shim-runc-v2", "conmon", "dockerd", "podman",
	"cri-o", "crio", "kubelet",
}

# The syscall a policy event hooked, without the architecture prefix
# (__x64_sys_openat -> openat).
syscall_name(fn) := trim_prefix(regex.replace(fn, `^__[a-z0-9]+_sys_`, ""), "sys_")

# Arguments of a policy event by label.
arg(ev, label) := a if {
	some a in ev.args
	a.label == label
}
