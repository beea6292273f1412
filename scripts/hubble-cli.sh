#!/bin/sh
# Builds the hubble CLI of the github.com/cilium/cilium version go.mod
# names, once, into $CACHE/hubble/hubble-VERSION, and prints its path. The
# Hubble API tests drive Vigil's Observer service with it. The build (a few
# minutes) happens in a module of its own under $CACHE, so that Vigil's
# go.mod keeps only what Vigil imports.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${CACHE:-$root/.cache}
ver=$(cd "$root" && go list -m -f '{{.Version}}' github.com/cilium/cilium)
out=$cache/hubble/hubble-$ver
if [ -x "$out" ]; then
	echo "$out"
	exit 0
fi
mod=$cache/hubble/build-$ver
mkdir -p "$mod"
cat >"$mod/go.mod" <<MOD
module vigil.local/hubblecli

go 1.26.0

require github.com/cilium/cilium $ver
MOD
cat >"$mod/tools.go" <<'SRC'
//go:build tools

package tools

import _ "github.com/cilium/cilium/hubble/cmd"
SRC
echo "hubble-cli: building the hubble CLI of cilium $ver (a few minutes, once)" >&2
(cd "$mod" && GOFLAGS=-mod=mod go mod tidy -e >&2 && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -o "$out.tmp" github.com/cilium/cilium/hubble >&2)
mv "$out.tmp" "$out"
echo "$out"
