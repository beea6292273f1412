#!/bin/sh
# Prepares this machine for `make bench` (idempotently): the Debian packages
# the workloads need (redis-server and redis-benchmark, iproute2 for the
# network namespaces of the policy benchmarks), and the kernel file systems
# the agent needs (bpffs, tracefs). The benchmark starts its own redis-server
# on a free loopback port; a packaged service, if the system starts one, is
# left alone.
#
#   bench/setup.sh
set -eu

want="redis-server redis-tools iproute2"

missing=""
for p in $want; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
if [ -n "$missing" ]; then
	echo "bench/setup: installing$missing" >&2
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
		mount -t "$1" "$1" "$2" && echo "bench/setup: mounted $1 at $2" >&2
	fi
}
if [ "$(id -u)" = 0 ]; then
	mountfs bpf /sys/fs/bpf
	mountfs tracefs /sys/kernel/tracing
fi
