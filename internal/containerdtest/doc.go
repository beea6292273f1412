// Package containerdtest runs a private containerd for tests and creates pods
// in it over the CRI API the way the kubelet does.
//
// Start launches Debian's containerd with its own root, state directory,
// socket and CNI configuration under the test's temporary directory (never a
// system instance), imports a small image built from busybox-static (there is
// no registry), tagged as the sandbox (pause) image too, and tears everything
// down when the test ends: pods, shims, mounts, the pod cgroups it created and
// the daemon. It needs root; tests that use it are privileged (TestPriv*).
package containerdtest
