#!/bin/sh
# Regenerates kprobes/abi/include/vmlinux.h from the running kernel's BTF. The header
# only provides type definitions: every field access goes through CO-RE
# relocations, so programs built from it load on any kernel with BTF.
set -eu
cd "$(dirname "$0")/.."
command -v bpftool >/dev/null 2>&1 || ./scripts/setup-host.sh
btf=${1:-/sys/kernel/btf/vmlinux}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
bpftool btf dump file "$btf" format c > "$tmp"
chmod 0644 "$tmp"
mv "$tmp" kprobes/abi/include/vmlinux.h
trap - EXIT
echo "wrote kprobes/abi/include/vmlinux.h from $btf ($(uname -r))"
