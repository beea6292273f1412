// Command vmtest runs a Go test binary inside a qemu virtual machine on a
// chosen kernel, so that privileged tests exercise kernels other than the
// host's. It is meant to be used as `go test -exec`:
//
//	VIGIL_PRIVILEGED=1 CGO_ENABLED=0 go test -run '^TestPriv' \
//	    -exec "$PWD/bin/vmtest -kernel $PWD/.cache/kernels/6.1" ./kprobes
//
// For each package, vmtest first lists the tests that match -test.run on the
// host; when none does, it prints what the test binary would print and never
// boots. Otherwise it packs busybox, the static test binary, the package's
// testdata, the requested kernel modules and, when the binary starts
// containers (it links internal/containerdtest), the host's containerd, runc
// and CNI plugins with their shared libraries into an initramfs, boots the
// kernel with it, streams the test's output and exits with the test's exit
// status. Any failure of its own (no kernel, no qemu, a guest that panics,
// hangs or stops without reporting the status) ends in a message on stderr
// and exit status 3, never in a silent pass.
//
// The guest has two serial ports: ttyS0 is the kernel console (kept quiet,
// scanned for panics, shown when something goes wrong or with -console), and
// ttyS1 carries the test's stdout and stderr followed by a marker line with
// its exit status.
//
// vmtest never touches the host beyond a temporary directory and the qemu
// process it starts.
package main
