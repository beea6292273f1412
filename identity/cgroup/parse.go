package cgroup

import "strings"

// Runtime names the container runtime a cgroup path was created by, as far
// as its layout tells.
type Runtime string

const (
	RuntimeUnknown    Runtime = ""
	RuntimeContainerd Runtime = "containerd"
	RuntimeCRIO       Runtime = "cri-o"
	RuntimeDocker     Runtime = "docker"
	RuntimePodman     Runtime = "podman"
)

// Info is what a cgroup path says about the container it belongs to.
type Info struct {
	// ContainerID is the 64-hex-digit id of the innermost container whose
	// cgroup is the path or one of its ancestors; empty when none is.
	ContainerID string
	// PodUID is the uid of the innermost Kubernetes pod cgroup in the
	// path (with dashes, as in metadata.uid); empty when none is.
	PodUID string
	// Runtime is the runtime whose naming the container's component used;
	// unknown for a bare id (the cgroupfs driver).
	Runtime Runtime
}

// scopePrefixes are the systemd scope names runtimes give container cgroups:
// <prefix><id>.scope.
var scopePrefixes = []struct {
	prefix  string
	runtime Runtime
}{
	{"cri-containerd-", RuntimeContainerd},
	{"crio-", RuntimeCRIO},
	{"docker-", RuntimeDocker},
	{"libpod-", RuntimePodman},
}

// Parse reads a cgroup v2 path ("/kubepods/burstable/pod<uid>/<id>",
// "/kubepods.slice/.../cri-containerd-<id>.scope", ...). The innermost
// container component wins, so a pod inside a kind node (itself a docker
// container) resolves to the pod's container. Components that only look
// like a container (CRI-O's conmon scope, a 64-character name with
// non-hex digits) are not taken for one.
func Parse(path string) Info {
	var info Info
	rest := path
	for rest != "" {
		i := strings.LastIndexByte(rest, '/')
		comp := rest[i+1:]
		if i < 0 {
			rest = ""
		} else {
			rest = rest[:i]
		}
		if comp == "" {
			continue
		}
		if info.ContainerID == "" {
			if id, rt, ok := containerComponent(comp); ok {
				info.ContainerID, info.Runtime = id, rt
				// slice:runtime:id names its pod in the slice part.
				if slice, _, ok := strings.Cut(comp, ":"); ok {
					if uid, ok := podComponent(slice); ok {
						info.PodUID = uid
						return info
					}
				}
				continue
			}
		}
		if info.PodUID == "" {
			if uid, ok := podComponent(comp); ok {
				info.PodUID = uid
				// A pod cgroup is the outer bound of its containers:
				// a container id further up belongs to something else
				// (the kind node, for instance).
				return info
			}
		}
	}
	return info
}

// containerComponent recognises one path component naming a container.
func containerComponent(c string) (string, Runtime, bool) {
	if isContainerID(c) {
		return c, RuntimeUnknown, true
	}
	if s, ok := strings.CutSuffix(c, ".scope"); ok {
		for _, p := range scopePrefixes {
			if id, ok := strings.CutPrefix(s, p.prefix); ok && isContainerID(id) {
				return id, p.runtime, true
			}
		}
		return "", RuntimeUnknown, false
	}
	// The systemd naming under the cgroupfs manager, as containerd
	// writes it when SystemdCgroup is off but the kubelet passes a slice:
	// kubepods-besteffort-pod<uid>.slice:cri-containerd:<id>.
	if i := strings.LastIndexByte(c, ':'); i >= 0 && isContainerID(c[i+1:]) {
		rt := RuntimeUnknown
		switch {
		case strings.HasSuffix(c[:i], ":cri-containerd"):
			rt = RuntimeContainerd
		case strings.HasSuffix(c[:i], ":crio"):
			rt = RuntimeCRIO
		case strings.HasSuffix(c[:i], ":docker"):
			rt = RuntimeDocker
		}
		return c[i+1:], rt, true
	}
	// docker's cgroupfs layout under a parent: /docker/<id> is the bare
	// id case above; moby names nested daemons docker/<id> too.
	return "", RuntimeUnknown, false
}

// podComponent recognises the kubelet's pod cgroup: pod<uid> (cgroupfs) or
// kubepods-<qos>-pod<uid_with_underscores>.slice (systemd).
func podComponent(c string) (string, bool) {
	if s, ok := strings.CutSuffix(c, ".slice"); ok {
		i := strings.LastIndex(s, "-pod")
		if i < 0 || !strings.HasPrefix(s, "kubepods") {
			return "", false
		}
		uid := strings.ReplaceAll(s[i+len("-pod"):], "_", "-")
		if isUID(uid) {
			return uid, true
		}
		return "", false
	}
	if uid, ok := strings.CutPrefix(c, "pod"); ok && isUID(uid) {
		return uid, true
	}
	return "", false
}

// isContainerID reports whether s is 64 lowercase hex digits, the id format
// of containerd, CRI-O, docker and podman.
func isContainerID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// isUID reports whether s is a Kubernetes uid: a UUID in its 8-4-4-4-12
// form. Static pods use a 32-hex-digit hash instead, accepted too.
func isUID(s string) bool {
	switch len(s) {
	case 36:
		for i := 0; i < len(s); i++ {
			c := s[i]
			if i == 8 || i == 13 || i == 18 || i == 23 {
				if c != '-' {
					return false
				}
				continue
			}
			if !isHex(c) {
				return false
			}
		}
		return true
	case 32:
		for i := 0; i < len(s); i++ {
			if !isHex(s[i]) {
				return false
			}
		}
		return true
	}
	return false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
