package containerdtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vigilsec/vigil/internal/kerneltest"
)

// Env is a running private containerd.
type Env struct {
	// Dir holds the daemon's root, state, socket, config and logs.
	Dir string
	// Socket is the CRI (and containerd) socket: unix://Socket.
	Socket string
	// Runtime is a CRI client connected to Socket.
	Runtime runtimeapi.RuntimeServiceClient
	// Version is the daemon's CRI version answer.
	Version *runtimeapi.VersionResponse

	cmd     *exec.Cmd
	conn    *grpc.ClientConn
	cniDir  string
	log     string
	pods    []string // sandbox ids, for clean-up
	cgroups []string // pod cgroup parents, for clean-up
}

// Patience bounds the waits of this package and of the tests that use it
// for the runtime. It is long because the VM tier runs containerd under
// emulation (TCG), on a host shared with other work, where starting it or a
// pod takes ten to twenty times as long as on the host; every wait ends as
// soon as what it waits for has happened.
const Patience = 3 * time.Minute

// Binaries the environment needs, from Debian's containerd, runc and
// containernetworking-plugins packages.
var (
	ContainerdBin = "containerd"
	CtrBin        = "ctr"
	RuncBin       = "runc"
	CNIBinDir     = "/usr/lib/cni"
	BusyboxBin    = "/bin/busybox"
)

// Available says why the environment cannot run here, or "" when it can.
func Available() string {
	for _, b := range []string{ContainerdBin, CtrBin, RuncBin, "containerd-shim-runc-v2"} {
		if _, err := exec.LookPath(b); err != nil {
			return fmt.Sprintf("%s not in PATH: no container runtime here (on the host, scripts/setup-host.sh installs containerd and runc; in the VM tier, vmtest packs the host's into the initramfs of every test binary that links this package, unless -containerd never)", b)
		}
	}
	if _, err := os.Stat(BusyboxBin); err != nil {
		return BusyboxBin + " not found (install busybox-static)"
	}
	return ""
}

// Start runs containerd for the test, or skips it with the reason the
// environment cannot run here. Everything is removed when the test ends.
func Start(t testing.TB) *Env {
	t.Helper()
	if why := Available(); why != "" {
		if kerneltest.OnHost() {
			t.Fatal(why)
		}
		kerneltest.Skip(t, "%s", why)
	}
	dir, err := os.MkdirTemp("", "vigil-containerd-")
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{Dir: dir, Socket: filepath.Join(dir, "containerd.sock"), cniDir: filepath.Join(dir, "cni"), log: filepath.Join(dir, "containerd.log")}
	t.Cleanup(func() { e.stop(t) })
	if err := os.MkdirAll(e.cniDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := e.writeCNI(); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(e.config()), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(e.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	e.cmd = exec.Command(ContainerdBin, "--config", cfg, "--log-level", "info")
	e.cmd.Stdout, e.cmd.Stderr = logf, logf
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := e.cmd.Start(); err != nil {
		t.Fatalf("start containerd: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), Patience)
	defer cancel()
	if err := e.waitReady(ctx); err != nil {
		t.Fatalf("containerd did not become ready: %v\n%s", err, e.Logs())
	}
	img := filepath.Join(dir, "images.tar")
	if err := buildImages(BusyboxBin, img); err != nil {
		t.Fatal(err)
	}
	if out, err := e.Ctr(ctx, "images", "import", img); err != nil {
		t.Fatalf("import test images: %v\n%s", err, out)
	}
	return e
}

func (e *Env) config() string {
	return fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[plugins."io.containerd.internal.v1.opt"]
  path = %[5]q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[6]q
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[7]q
    conf_dir = %[8]q
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = %[9]q
        SystemdCgroup = false
        Root = %[10]q
`, filepath.Join(e.Dir, "root"), filepath.Join(e.Dir, "state"), e.Socket, e.Socket+".ttrpc",
		filepath.Join(e.Dir, "opt"), PauseImage, CNIBinDir, e.cniDir, lookPath(RuncBin), filepath.Join(e.Dir, "runc"))
}

// writeCNI configures a bridge network with host-local addresses from a
// test range. The bridge is no gateway and does no masquerading, so the host
// gets no address or route from it.
func (e *Env) writeCNI() error {
	conf := fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "vigil-test",
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": false,
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "10.213.%d.0/24"}]],
        "dataDir": %q
      }
    }
  ]
}
`, bridgeName(), os.Getpid()%250, filepath.Join(e.Dir, "ipam"))
	return os.WriteFile(filepath.Join(e.cniDir, "10-vigil-test.conflist"), []byte(conf), 0o644)
}

func bridgeName() string { return fmt.Sprintf("vgt%d", os.Getpid()%100000) }

func lookPath(b string) string {
	if p, err := exec.LookPath(b); err == nil {
		return p
	}
	return b
}

func (e *Env) waitReady(ctx context.Context) error {
	for {
		if _, err := os.Stat(e.Socket); err == nil {
			break
		}
		if e.cmd.ProcessState != nil {
			return fmt.Errorf("containerd exited")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no socket at %s: %w", e.Socket, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	conn, err := grpc.NewClient("unix://"+e.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	e.conn = conn
	e.Runtime = runtimeapi.NewRuntimeServiceClient(conn)
	for {
		v, err := e.Runtime.Version(ctx, &runtimeapi.VersionRequest{})
		if err == nil {
			st, err := e.Runtime.Status(ctx, &runtimeapi.StatusRequest{})
			if err == nil && runtimeReady(st) {
				e.Version = v
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("CRI not ready: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func runtimeReady(st *runtimeapi.StatusResponse) bool {
	for _, c := range st.GetStatus().GetConditions() {
		if c.Type == runtimeapi.RuntimeReady && c.Status {
			return true
		}
	}
	return false
}

// Ctr runs ctr against this daemon in the k8s.io namespace.
func (e *Env) Ctr(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, CtrBin, append([]string{"--address", e.Socket, "--namespace", "k8s.io"}, args...)...)
	return cmd.CombinedOutput()
}

// Logs returns the daemon's log so far.
func (e *Env) Logs() string {
	b, _ := os.ReadFile(e.log)
	return string(b)
}

// stop removes every pod created through the environment, then the daemon,
// its shims, mounts, network and directory.
func (e *Env) stop(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), Patience)
	defer cancel()
	if e.Runtime != nil {
		if l, err := e.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err == nil {
			for _, s := range l.Items {
				e.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: s.Id})
				if _, err := e.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: s.Id}); err != nil {
					t.Logf("clean-up: remove pod %s: %v", s.Id, err)
				}
			}
		}
	}
	if e.conn != nil {
		e.conn.Close()
	}
	if e.cmd != nil && e.cmd.Process != nil {
		e.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { e.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			e.cmd.Process.Kill()
			<-done
		}
	}
	e.killShims()
	e.unmountAll()
	for i := len(e.cgroups) - 1; i >= 0; i-- {
		removeCgroupEverywhere(e.cgroups[i])
	}
	if link := "/sys/class/net/" + bridgeName(); exists(link) {
		exec.Command("ip", "link", "del", bridgeName()).Run()
	}
	if err := os.RemoveAll(e.Dir); err != nil {
		t.Logf("clean-up: %v", err)
	}
}

// killShims ends the runc shims this daemon started (they outlive it by
// design); they are recognised by our socket on their command line.
func (e *Env) killShims() {
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := bytes.Split(cmdline, []byte{0})
		if len(args) == 0 || !bytes.HasSuffix(args[0], []byte("containerd-shim-runc-v2")) {
			continue
		}
		if bytes.Contains(cmdline, []byte(e.Socket)) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// unmountAll detaches every mount below Dir, deepest first.
func (e *Env) unmountAll() {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mps []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], e.Dir+"/") {
			mps = append(mps, f[4])
		}
	}
	for i := len(mps) - 1; i >= 0; i-- {
		unix.Unmount(mps[i], unix.MNT_DETACH)
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// removeCgroupEverywhere removes a cgroup directory (and its now empty
// parents up to the first one still in use) from every mounted hierarchy.
func removeCgroupEverywhere(path string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(data), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		if typ, _, _ := strings.Cut(post, " "); typ != "cgroup" && typ != "cgroup2" {
			continue
		}
		f := strings.Fields(pre)
		if len(f) < 5 {
			continue
		}
		for p := path; p != "/" && p != "." && p != ""; p = filepath.Dir(p) {
			if err := os.Remove(filepath.Join(f[4], p)); err != nil {
				break
			}
		}
	}
}
