package cgroup

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	cid  = "3f4c1ab0d6e5b8a79c2e1f0d4b6a8c9e7f1a2b3c4d5e6f708192a3b4c5d6e7f8"
	cid2 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	uid  = "8a3b2f6e-1c4d-4e5f-9a7b-0c1d2e3f4a5b"
	uidU = "8a3b2f6e_1c4d_4e5f_9a7b_0c1d2e3f4a5b"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name, path string
		want       Info
	}{
		{"cgroupfs guaranteed", "/kubepods/pod" + uid + "/" + cid,
			Info{ContainerID: cid, PodUID: uid}},
		{"cgroupfs burstable", "/kubepods/burstable/pod" + uid + "/" + cid,
			Info{ContainerID: cid, PodUID: uid}},
		{"cgroupfs besteffort", "/kubepods/besteffort/pod" + uid + "/" + cid,
			Info{ContainerID: cid, PodUID: uid}},
		{"systemd containerd", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope",
			Info{ContainerID: cid, PodUID: uid, Runtime: RuntimeContainerd}},
		{"systemd guaranteed", "/kubepods.slice/kubepods-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope",
			Info{ContainerID: cid, PodUID: uid, Runtime: RuntimeContainerd}},
		{"systemd cri-o", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice/crio-" + cid + ".scope",
			Info{ContainerID: cid, PodUID: uid, Runtime: RuntimeCRIO}},
		{"cri-o conmon is not the container", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice/crio-conmon-" + cid + ".scope",
			Info{PodUID: uid}},
		{"process in a sub-cgroup of the container", "/kubepods.slice/kubepods-pod" + uidU + ".slice/crio-" + cid + ".scope/init.scope",
			Info{ContainerID: cid, PodUID: uid, Runtime: RuntimeCRIO}},
		{"containerd systemd names under cgroupfs (kind)", "/system.slice/containerd.service/kubepods-burstable-pod" + uidU + ".slice:cri-containerd:" + cid,
			Info{ContainerID: cid, PodUID: uid, Runtime: RuntimeContainerd}},
		{"kind node: the pod's container, not the node's", "/docker/" + cid2 + "/kubepods/besteffort/pod" + uid + "/" + cid,
			Info{ContainerID: cid, PodUID: uid}},
		{"kind node itself", "/docker/" + cid2 + "/system.slice/containerd.service",
			Info{ContainerID: cid2}},
		{"docker cgroupfs", "/docker/" + cid, Info{ContainerID: cid}},
		{"docker systemd", "/system.slice/docker-" + cid + ".scope", Info{ContainerID: cid, Runtime: RuntimeDocker}},
		{"podman", "/machine.slice/libpod-" + cid + ".scope/container", Info{ContainerID: cid, Runtime: RuntimePodman}},
		{"pod cgroup only", "/kubepods/burstable/pod" + uid, Info{PodUID: uid}},
		{"static pod hash uid", "/kubepods/burstable/pod0123456789abcdef0123456789abcdef/" + cid,
			Info{ContainerID: cid, PodUID: "0123456789abcdef0123456789abcdef"}},
		{"root", "/", Info{}},
		{"empty", "", Info{}},
		{"service", "/system.slice/web.service", Info{}},
		{"user session", "/user.slice/user-0.slice/session-3.scope", Info{}},
		{"uppercase hex is not an id", "/docker/" + strings.ToUpper(cid), Info{}},
		{"63 digits", "/docker/" + cid[1:], Info{}},
		{"scope with a short id", "/system.slice/docker-abc.scope", Info{}},
		{"not a pod uid", "/kubepods/burstable/podcast", Info{}},
		{"slice without kubepods", "/machine.slice/machine-pod" + uidU + ".slice", Info{}},
		{"trailing slash", "/kubepods/besteffort/pod" + uid + "/" + cid + "/", Info{ContainerID: cid, PodUID: uid}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Parse(tt.path)); diff != "" {
				t.Errorf("Parse(%q) (-want +got):\n%s", tt.path, diff)
			}
		})
	}
}

func TestMountpointIn(t *testing.T) {
	hybrid := `22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	unified := `35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
`
	nested := `100 90 0:30 /kubepods/pod1 /sys/fs/cgroup ro - cgroup2 cgroup2 rw
101 90 0:30 / /host/sys\040fs/cgroup ro - cgroup2 cgroup2 rw
`
	onlyNested := `100 90 0:30 /kubepods/pod1 /sys/fs/cgroup ro - cgroup2 cgroup2 rw
`
	for _, tt := range []struct {
		name, in, want string
	}{
		{"hybrid", hybrid, "/sys/fs/cgroup/unified"},
		{"unified", unified, "/sys/fs/cgroup"},
		{"hierarchy root preferred, escapes undone", nested, "/host/sys fs/cgroup"},
		{"namespaced mount when it is the only one", onlyNested, "/sys/fs/cgroup"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MountpointIn(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	if _, err := MountpointIn(strings.NewReader("31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n")); err != ErrNoCgroup2 {
		t.Errorf("v1-only host: err = %v, want ErrNoCgroup2", err)
	}
}

func TestRelative(t *testing.T) {
	for _, tt := range []struct{ root, abs, want string }{
		{"/sys/fs/cgroup", "/sys/fs/cgroup", "/"},
		{"/sys/fs/cgroup", "/sys/fs/cgroup/a/b", "/a/b"},
		{"/", "/a", "/a"},
	} {
		got, err := relative(tt.root, tt.abs)
		if err != nil || got != tt.want {
			t.Errorf("relative(%q, %q) = %q, %v; want %q", tt.root, tt.abs, got, err, tt.want)
		}
	}
	if _, err := relative("/sys/fs/cgroup", "/sys/fs/cgroupx/a"); err == nil {
		t.Error("a path beside the mount was accepted")
	}
}

// FuzzParse checks that any path parses without panicking and that what it
// finds is really in the path, well formed.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"/kubepods/burstable/pod" + uid + "/" + cid,
		"/kubepods.slice/kubepods-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope",
		"/system.slice/containerd.service/kubepods-burstable-pod" + uidU + ".slice:cri-containerd:" + cid,
		"/", "", "//", ":", ".scope", "/pod", "kubepods-pod.slice",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		info := Parse(path)
		if info.ContainerID != "" && (!isContainerID(info.ContainerID) || !strings.Contains(path, info.ContainerID)) {
			t.Fatalf("container id %q from %q", info.ContainerID, path)
		}
		if info.PodUID != "" && !isUID(info.PodUID) {
			t.Fatalf("pod uid %q from %q", info.PodUID, path)
		}
		if info.Runtime != RuntimeUnknown && info.ContainerID == "" {
			t.Fatalf("runtime without a container from %q", path)
		}
	})
}

func FuzzMountpointIn(f *testing.F) {
	f.Add("41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n")
	f.Add("1 2 3 4 5 - cgroup2\n\\\n")
	f.Fuzz(func(t *testing.T, s string) {
		mp, err := MountpointIn(strings.NewReader(s))
		if err == nil && mp == "" {
			t.Fatal("no error and no mount point")
		}
	})
}
