#!/bin/sh
# Fetches the kernels the VM test tier boots: the newest Debian 6.1 and 6.12
# cloud kernels (linux-image-*-cloud-amd64-unsigned), unpacked under
# .cache/kernels/<release>/ with a symlink per series:
#
#   .cache/kernels/6.1  -> 6.1.0-NN-cloud-amd64/   (boot/vmlinuz-*, boot/config-*, lib/modules/*/)
#   .cache/kernels/6.12 -> 6.12.NN+deb12-cloud-amd64/
#
# Idempotent: a release already unpacked is not downloaded again. The package
# names are resolved with apt-cache, never hard-coded.
#
#   scripts/vm-kernels.sh [SERIES...]     default: 6.1 6.12
#
# Environment: CACHE (default <repo>/.cache).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${CACHE:-$root/.cache}
dir=$cache/kernels
series=${*:-6.1 6.12}

# newest_package SERIES prints the newest installable
# linux-image-SERIES.*-cloud-amd64-unsigned package name, or nothing.
newest_package() {
	pat="^linux-image-$(printf %s "$1" | sed 's/\./\\./g')[.-][0-9].*-cloud-amd64-unsigned\$"
	apt-cache search --names-only "$pat" 2>/dev/null | awk '{print $1}' | sort -rV |
		while read -r name; do
			# Names that only exist as references have no candidate version.
			if apt-cache policy "$name" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
				echo "$name"
				break
			fi
		done
}

updated=""
mkdir -p "$dir/debs"
for s in $series; do
	pkg=$(newest_package "$s")
	if [ -z "$pkg" ] && [ -z "$updated" ]; then
		echo "vm-kernels: no linux-image-$s.*-cloud-amd64-unsigned in the package lists; running apt-get update" >&2
		apt-get update -qq >&2
		updated=1
		pkg=$(newest_package "$s")
	fi
	if [ -z "$pkg" ]; then
		if [ -e "$dir/$s/boot" ]; then
			echo "vm-kernels: $s: no package found, keeping $(readlink "$dir/$s")" >&2
			continue
		fi
		echo "vm-kernels: no package linux-image-$s.*-cloud-amd64-unsigned is available from apt (check /etc/apt/sources.list*)" >&2
		exit 1
	fi
	release=${pkg#linux-image-}
	release=${release%-unsigned}
	if [ ! -f "$dir/$release/.complete" ]; then
		echo "vm-kernels: downloading $pkg" >&2
		rm -rf "$dir/$release" "$dir/debs/$pkg"
		mkdir -p "$dir/debs/$pkg"
		(cd "$dir/debs/$pkg" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >&2)
		deb=$(ls "$dir/debs/$pkg"/*.deb)
		rm -rf "$dir/$release.tmp"
		mkdir -p "$dir/$release.tmp"
		dpkg-deb -x "$deb" "$dir/$release.tmp"
		ls "$dir/$release.tmp"/boot/vmlinuz-* >/dev/null
		rm -rf "$dir/debs/$pkg"
		touch "$dir/$release.tmp/.complete"
		mv "$dir/$release.tmp" "$dir/$release"
	fi
	old=$(readlink "$dir/$s" 2>/dev/null || true)
	ln -sfn "$release" "$dir/$s"
	if [ -n "$old" ] && [ "$old" != "$release" ]; then
		rm -rf "${dir:?}/$old"
	fi
	echo "vm-kernels: $s -> $dir/$release" >&2
done
