#!/usr/bin/env bash
# Measures how many of Tetragon's policies Vigil loads (docs/tetragon-compat.md).
#
#   scripts/tetragon-compat.sh TETRAGON-CHECKOUT [KERNEL...]
#
# TETRAGON-CHECKOUT is a work tree of github.com/cilium/tetragon (read only).
# Its examples/tracingpolicy and examples/quickstart policies are copied to
# a temporary folder; then
#   1. `vigil policy validate` runs on each file against the host kernel's
#      BTF (one run per file, so that Tetragon's examples reusing a policy
#      name do not count against each other), and the load fraction is printed;
#   2. for each KERNEL (a folder under .cache/kernels, default 6.12),
#      TestPrivXTetragonCorpus runs in that VM: every file is parsed,
#      validated, loaded into the tracing sensor and unloaded, and the
#      refusals are printed grouped by cause. The host's /bin/bash is packed
#      into the VM, for the uprobe examples that probe it.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
src=${1:?usage: scripts/tetragon-compat.sh TETRAGON-CHECKOUT [KERNEL...]}
shift
kernels=("$@")
[ ${#kernels[@]} -gt 0 ] || kernels=(6.12)
CACHE=${CACHE:-$root/.cache}

work=$(mktemp -d /tmp/vigil-tetragon.XXXXXX)
trap 'rm -rf "$work"' EXIT
for d in examples/tracingpolicy examples/quickstart; do
	mkdir -p "$work/$d"
	cp -r "$src/$d/." "$work/$d/"
done

cd "$root"
CGO_ENABLED=0 go build -o "$work/vigil" ./cmd/vigil
CGO_ENABLED=0 go build -o bin/ ./tools/vmtest

total=0 valid=0
while IFS= read -r f; do
	grep -qE '^kind: *"?TracingPolicy' "$f" || continue
	total=$((total + 1))
	if (cd "$work" && ./vigil policy validate "${f#"$work"/}") >"$work/out" 2>&1; then
		valid=$((valid + 1))
	else
		grep -v ': warning: ' "$work/out" || true
	fi
done < <(find "$work/examples" -name '*.yaml' -o -name '*.yml' | sort)
echo "host $(uname -r): vigil policy validate accepts $valid of $total policy files"

# The uprobe examples probe /bin/bash, which the VM has only when packed.
include=$work/examples
[ -f /bin/bash ] && include=$include,/bin/bash
for k in "${kernels[@]}"; do
	VIGIL_TETRAGON_POLICIES=$work/examples CGO_ENABLED=0 go test -count=1 -v -run '^TestPrivXTetragonCorpus$' \
		-exec "$root/bin/vmtest -kernel $CACHE/kernels/$k -include $include" ./tracingsensor |
		sed -n '/tetragon corpus on/,/^--- /p' | grep -v '^--- '
done
