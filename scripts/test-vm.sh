#!/bin/sh
# Runs the privileged tests inside qemu on each Debian kernel at once (see
# docs/testing.md): one `go test -exec vmtest` per kernel, side by side,
# VM_P virtual machines in all, so that no core waits for the slowest
# package of one kernel. Progress lines carry the kernel; each kernel's
# summary (failures with their output, skips, counts) follows when all are
# done. Exits 1 when anything failed on any kernel.
#
#   scripts/test-vm.sh KERNEL...        (folders under $CACHE/kernels)
#
# Environment: GO, CACHE, PKGS, VM_P (default 2), VM_TIMEOUT (go test
# -timeout of each package, default 12m), RUN (default ^TestPriv), VM_LOGS
# (the folder of each kernel's full log; default a new one under $TMPDIR, so
# that runs side by side do not write over each other's).
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
GO=${GO:-go}
CACHE=${CACHE:-$root/.cache}
PKGS=${PKGS:-./...}
VM_P=${VM_P:-2}
VM_TIMEOUT=${VM_TIMEOUT:-12m}
RUN=${RUN:-^TestPriv}
n=$#
[ "$n" -gt 0 ] || { echo "usage: $0 KERNEL..." >&2; exit 2; }
per=$(( (VM_P + n - 1) / n ))
logs=${VM_LOGS:-$(mktemp -d "${TMPDIR:-/tmp}/vigil-vm-logs.XXXXXX")}
mkdir -p "$logs"

for k in "$@"; do
	echo "== VM tests on $k ($(readlink "$CACHE/kernels/$k" || echo "$CACHE/kernels/$k")), $per at a time"
	rm -f "$logs/vm-$k.rc"
	(
		VIGIL_PRIVILEGED=1 CGO_ENABLED=0 ./bin/testsum -tag -label "vm-$k" -- \
			$GO test -json -count=1 -p "$per" -timeout "$VM_TIMEOUT" -run "$RUN" \
			-exec "$root/bin/vmtest -kernel $CACHE/kernels/$k" $PKGS 2>&1
		echo $? >"$logs/vm-$k.rc"
	) | tee "$logs/vm-$k.log" | grep --line-buffered '^\[vm-' &
done
wait

rc=0
for k in "$@"; do
	sed -n '/^\[vm-/!p' "$logs/vm-$k.log"
	[ "$(cat "$logs/vm-$k.rc" 2>/dev/null)" = 0 ] || rc=1
done
echo "full logs: $logs"
exit $rc
