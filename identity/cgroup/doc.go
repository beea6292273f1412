// Package cgroup turns cgroup v2 ids and paths into container identities.
//
// Parse reads a cgroup path the way /proc/PID/cgroup shows it and finds the
// container id and pod uid in it, for every common layout: the kubelet's
// cgroupfs and systemd drivers, containerd, CRI-O, docker and podman, nested
// (kind, docker-in-docker) or not. An Index maps cgroup ids (the inode
// numbers of cgroup directories, as bpf_get_current_cgroup_id returns them)
// to paths; it is built by walking the cgroup2 tree and completed one id at a
// time with open_by_handle_at.
//
// The package reads the cgroup file system and nothing else; it never
// creates or changes cgroups (tests do that themselves).
package cgroup
