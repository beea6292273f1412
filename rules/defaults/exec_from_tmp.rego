package vigil.rules.exec_from_tmp

import data.vigil.lib.events

metadata := {
	"id": "VGL-EXEC-004",
	"name": "Execution from a temporary directory",
	"description": "A program or a script run from /tmp, /var/tmp or /dev/shm, where downloaded payloads land; build tools and what they build and run there are not reported.",
	"severity": "medium",
	"mitre": {"tactic": "TA0002 Execution", "technique": "T1204.002 Malicious File"},
	"tags": ["file", "execution"],
	"events": ["process_exec"],
}

dirs := ["/tmp/", "/var/tmp/", "/dev/shm/", "/run/shm/"]

# What compilers, build systems and package builders place in /tmp and run:
# go test's and go run's binaries, linker and compiler steps, pip's and
# npm's build scripts.
build_outputs := [
	"/tmp/go-build", "/tmp/go-link-", "/tmp/cgo", "/tmp/bazel", "/tmp/cargo-install", "/tmp/rustc", "/tmp/pip-",
	"/tmp/npm-", "/tmp/yarn--", "/tmp/pnpm-", "/tmp/ccache", "/tmp/cmake", "/tmp/_MEI", "/tmp/tmp.build",
]

# Trusted parents: build tools, compilers and package managers run what
# they have just built or unpacked in /tmp.
trusted_parents := {
	"go", "make", "gmake", "cmake", "ninja", "bazel", "bazelisk", "cargo", "rustc", "gcc", "cc", "c++", "g++", "clang",
	"clang++", "collect2", "ld", "npm", "yarn", "pnpm", "pip", "pip3", "dpkg", "apt", "apt-get", "rpm", "dnf", "yum",
	"apk", "gradle", "mvn", "dracut", "mkinitramfs", "update-initramfs",
}

alert contains msg if {
	p := input.process_exec.process
	some dir in dirs
	startswith(p.binary, dir)
	not built(p.binary)
	not trusted_parent(input.process_exec)
	msg := sprintf("%s executed from %s", [p.binary, dir])
}

# A script: the kernel puts the path of a script executed through its #!
# line in the interpreter's first argument; a relative one is relative to
# the working directory.
alert contains msg if {
	p := input.process_exec.process
	some dir in dirs
	startswith(p.arguments, dir)
	events.interpreted(p.binary)
	path := events.script(p)
	not built(path)
	not trusted_parent(input.process_exec)
	msg := sprintf("script %s run by %s from %s", [path, p.binary, dir])
}

alert contains msg if {
	p := input.process_exec.process
	some dir in dirs
	startswith(p.cwd, dir)
	events.interpreted(p.binary)
	path := events.script(p)
	startswith(path, dir)
	not startswith(p.arguments, "/")
	not built(path)
	not trusted_parent(input.process_exec)
	msg := sprintf("script %s run by %s from %s", [path, p.binary, dir])
}

built(path) if {
	some prefix in build_outputs
	startswith(path, prefix)
}

trusted_parent(e) if events.basename(e.parent.binary) in trusted_parents
