#!/bin/sh
# Prepares this machine for building, running and testing Vigil: installs the
# Debian packages the project needs (idempotently) and mounts the kernel file
# systems BPF needs (bpffs, tracefs, securityfs) when they are missing.
#
#   scripts/setup-host.sh            packages for running and the host tests
#   scripts/setup-host.sh --vm       also what the VM test tier needs
#   scripts/setup-host.sh --bench    also what make bench's workloads need
#   scripts/setup-host.sh --browser  also Chromium, for the web UI's tests
#   scripts/setup-host.sh --kube     also etcd, for the Kubernetes API tier
set -eu

want="clang-19 llvm-19 libbpf-dev bpftool iproute2 containerd runc containernetworking-plugins busybox-static dnsmasq-base"
case "${1:-}" in
--vm) want="$want qemu-system-x86 busybox-static xz-utils cpio zstd" ;;
--bench) want="$want redis-server redis-tools chromium fonts-dejavu-core" ;;
--browser) want="$want chromium fonts-dejavu-core" ;;
--kube) want="$want etcd-server" ;;
esac

missing=""
for p in $want; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
if [ -n "$missing" ]; then
	echo "setup-host: installing$missing" >&2
	stamp=/var/lib/apt/periodic/vigil-update-stamp
	if [ ! -f "$stamp" ] || [ -n "$(find "$stamp" -mmin +360 2>/dev/null)" ]; then
		apt-get update -qq >&2
		mkdir -p "$(dirname "$stamp")" && touch "$stamp"
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >&2
fi

mounted() { awk -v p="$1" -v t="$2" '$5 == p { split($0, a, " - "); split(a[2], f, " "); if (f[1] == t) found = 1 } END { exit !found }' /proc/self/mountinfo; }
mountfs() {
	if ! mounted "$2" "$1"; then
		mkdir -p "$2"
		mount -t "$1" "$1" "$2" && echo "setup-host: mounted $1 at $2" >&2
	fi
}
if [ "$(id -u)" = 0 ]; then
	mountfs bpf /sys/fs/bpf
	mountfs tracefs /sys/kernel/tracing
	mountfs securityfs /sys/kernel/security
fi
