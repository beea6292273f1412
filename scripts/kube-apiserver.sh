#!/bin/sh
# Builds kube-apiserver from the k8s.io/kubernetes module of the release that
# matches the k8s.io/client-go version go.mod names (client-go v0.X.Y ->
# kubernetes v1.X.Y), once, into $CACHE/kube/kube-apiserver-VERSION, and
# prints its path. The Kubernetes test tier (make test-kube) runs it with
# etcd (Debian's etcd-server, scripts/setup-host.sh --kube).
#
# k8s.io/kubernetes is not meant to be imported: its go.mod points each
# k8s.io/* staging module at ./staging. The build module below maps every
# one of them to the published module of the same release instead. It lives
# under $CACHE, so that Vigil's go.mod keeps only what Vigil imports. The
# build takes minutes from an empty Go build cache.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${CACHE:-$root/.cache}
staging=$(cd "$root" && go list -m -f '{{.Version}}' k8s.io/client-go)
ver=v1.${staging#v0.}
out=$cache/kube/kube-apiserver-$ver
if [ -x "$out" ]; then
	echo "$out"
	exit 0
fi
mod=$cache/kube/build-$ver
mkdir -p "$mod"
echo "kube-apiserver: building kube-apiserver $ver (minutes, once)" >&2
start=$(date +%s)
gomod=$(cd "$mod" && GOFLAGS="-mod=mod -buildvcs=false" go mod download -json "k8s.io/kubernetes@$ver" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
if [ -z "$gomod" ] || [ ! -f "$gomod" ]; then
	echo "kube-apiserver: go mod download k8s.io/kubernetes@$ver gave no go.mod" >&2
	exit 1
fi
{
	printf 'module vigil.local/kubeapiserver\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes %s\n\n' "$ver"
	# "k8s.io/api => ./staging/src/k8s.io/api" becomes "replace k8s.io/api => k8s.io/api v0.X.Y".
	awk -v v="$staging" '$1 ~ /^k8s\.io\// && $2 == "=>" && $3 ~ /^\.\/staging\// { print "replace " $1 " => " $1 " " v }' "$gomod"
} >"$mod/go.mod"
cat >"$mod/tools.go" <<'SRC'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
SRC
(cd "$mod" && GOFLAGS="-mod=mod -buildvcs=false" go mod tidy -e >&2 &&
	GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0 go build -o "$out.tmp" k8s.io/kubernetes/cmd/kube-apiserver >&2)
mv "$out.tmp" "$out"
echo "kube-apiserver: built $out in $(($(date +%s) - start)) s" >&2
echo "$out"
