#!/bin/sh
# The Death Star demo on this machine, without Kubernetes: three pods as
# network namespaces on a bridge, each in a cgroup of its own, and Vigil
# enforcing policy.yaml with its cgroup programs.
#
#   deathstar   org=empire,class=deathstar   198.18.10.1, serves :80
#   tiefighter  org=empire,class=tiefighter  198.18.10.2
#   xwing       org=alliance,class=xwing     198.18.10.3
#
# Run as root from anywhere: sh examples/deathstar/demo.sh
# With "l7": Cilium's L7 policy (../deathstar-l7/policy.yaml) instead, which
# also lets the tiefighter only POST /v1/request-landing:
#   sh examples/deathstar/demo.sh l7
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mode=${1:-l4}
policy=$here/policy.yaml
[ "$mode" = l7 ] && policy=$(cd "$here/../deathstar-l7" && pwd)/policy.yaml
tag=ds$$
work=$(mktemp -d)
cgroot=$(awk -F' - ' '{ split($1, a, " "); split($2, b, " "); if (b[1] == "cgroup2") { print a[5]; exit } }' /proc/self/mountinfo)
[ -n "$cgroot" ] || { echo "no cgroup2 mount" >&2; exit 1; }
cg=$cgroot/vigil-deathstar-$$
pids=""

cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	for n in deathstar tiefighter xwing; do echo 1 >"$cg/$n/cgroup.kill" 2>/dev/null || true; done
	wait 2>/dev/null || true
	for n in deathstar tiefighter xwing fabric; do ip netns del "$tag-$n" 2>/dev/null || true; done
	# A killed process leaves its cgroup a moment later.
	for _ in $(seq 50); do
		for n in deathstar tiefighter xwing; do rmdir "$cg/$n" 2>/dev/null || true; done
		rmdir "$cg" 2>/dev/null && break
		sleep 0.1
	done
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

# DEMO_BIN names a prebuilt demo program (the privileged test passes its
# own binary); otherwise it is built here.
if [ -n "${DEMO_BIN:-}" ]; then
	ln -s "$DEMO_BIN" "$work/demo"
else
	echo "== building the demo"
	(cd "$here/../.." && go build -o "$work/demo" ./examples/deathstar/demo)
fi

echo "== creating pods as network namespaces and cgroups"
ip netns add "$tag-fabric"
ip -n "$tag-fabric" link add br0 type bridge
ip -n "$tag-fabric" link set br0 up
mkdir "$cg"
i=0
for pod in deathstar:org=empire,class=deathstar tiefighter:org=empire,class=tiefighter xwing:org=alliance,class=xwing; do
	i=$((i + 1))
	name=${pod%%:*}
	ns=$tag-$name
	ip netns add "$ns"
	ip -n "$tag-fabric" link add "v$i" type veth peer name eth0 netns "$ns"
	ip -n "$tag-fabric" link set "v$i" master br0 up
	ip -n "$ns" link set lo up
	ip -n "$ns" link set eth0 up
	ip -n "$ns" addr add "198.18.10.$i/24" dev eth0
	mkdir "$cg/$name"
	labels=$(echo "${pod#*:}" | sed 's/=/: /g; s/,/, /g')
	printf -- '- {namespace: default, name: %s, labels: {%s}, ip: 198.18.10.%s, cgroup: %s, netns: %s}\n' "$name" "$labels" "$i" "$cg/$name" "/run/netns/$ns" >>"$work/pods.yaml"
	echo "   $name (${pod#*:}) at 198.18.10.$i"
done

# inpod POD CMD...: run CMD in the pod's network namespace and cgroup.
inpod() (
	pod=$1
	shift
	exec sh -c 'echo $$ > "$0/cgroup.procs" && n=$1 && shift && exec nsenter --net="$n" -- "$@"' "$cg/$pod" "/run/netns/$tag-$pod" "$@"
)

inpod deathstar "$work/demo" serve --addr :80 &
pids="$pids $!"

echo "== applying $policy"
"$work/demo" enforce --workloads "$work/pods.yaml" --policy "$policy" >"$work/enforce.log" 2>&1 &
pids="$pids $!"
for _ in $(seq 50); do grep -q enforcing "$work/enforce.log" 2>/dev/null && break; sleep 0.1; done
cat "$work/enforce.log"

echo "== tiefighter requests landing"
printf '   tiefighter: '
inpod tiefighter "$work/demo" land --to 198.18.10.1:80 || true
if [ "$mode" = l7 ]; then
	echo "== tiefighter tries the exhaust port"
	printf '   tiefighter: '
	inpod tiefighter "$work/demo" land --to 198.18.10.1:80 --method PUT --path /v1/exhaust-port || true
fi
echo "== xwing requests landing"
printf '   xwing: '
inpod xwing "$work/demo" land --to 198.18.10.1:80 || true

sleep 0.3
echo "== verdict records"
grep -v enforcing "$work/enforce.log" | sort -u | sed 's/^/   /'
