package process

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/event"
)

func TestParseStat(t *testing.T) {
	// A comm with spaces and parentheses must not shift the fields.
	stat := []byte("4242 (my (odd) cmd) S 17 4242 17 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 1000 10 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n")
	var r ProcRecord
	if err := parseStat(stat, &r); err != nil {
		t.Fatal(err)
	}
	if r.PPID != 17 || r.Comm != "my (odd) cmd" || r.StartKtime != 123456*10_000_000 || r.Kernel {
		t.Errorf("parsed %+v", r)
	}
	kthread := []byte("2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 0 0 0 17 1 0 0 0 0 0\n")
	if err := parseStat(kthread, &r); err != nil || !r.Kernel {
		t.Errorf("kthreadd: kernel=%v err=%v", r.Kernel, err)
	}
	for _, bad := range []string{"", "1 (x", "1 (x) S 1"} {
		if err := parseStat([]byte(bad), &r); err == nil {
			t.Errorf("parseStat(%q) accepted", bad)
		}
	}
}

func TestParseStatus(t *testing.T) {
	status := []byte("Name:\tsudo\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\n")
	var r ProcRecord
	parseStatus(status, &r)
	want := event.Credentials{UID: 1000, EUID: 0, SUID: 0, FSUID: 0, GID: 1000, EGID: 1000, SGID: 1000, FSGID: 1000}
	if diff := cmp.Diff(want, r.Creds); diff != "" {
		t.Errorf("creds (-want +got):\n%s", diff)
	}
	if r.CapEff != 0x1ffffffffff || r.CapPrm != 0x1ffffffffff || r.CapInh != 0 {
		t.Errorf("caps %x %x %x", r.CapEff, r.CapPrm, r.CapInh)
	}
}

func TestCgroupV2Path(t *testing.T) {
	b := []byte("12:pids:/x\n1:name=systemd:/user.slice\n0::/system.slice/web.service\n")
	if got := CgroupV2Path(b); got != "/system.slice/web.service" {
		t.Errorf("got %q", got)
	}
	if got := CgroupV2Path([]byte("3:cpu:/\n")); got != "" {
		t.Errorf("v1 only: got %q", got)
	}
}

// Reading our own process from /proc needs no privileges.
func TestReadProcSelf(t *testing.T) {
	r, err := ReadProcPID("/proc", uint32(os.Getpid()), "")
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	exe, _ = filepath.EvalSymlinks(exe)
	wd, _ := os.Getwd()
	if r.Binary != exe || r.CWD != wd || r.PPID != uint32(os.Getppid()) || r.Creds.UID != uint32(os.Getuid()) {
		t.Errorf("self: binary %q (want %q) cwd %q (want %q) ppid %d uid %d", r.Binary, exe, r.CWD, wd, r.PPID, r.Creds.UID)
	}
	if r.NS.PidInum == 0 || r.NS.MntInum == 0 {
		t.Errorf("namespaces not read: %+v", r.NS)
	}

	c := newTestCache(t, 0)
	recs, err := ReadProc("/proc", "")
	if err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		c.AddProc(&recs[i])
	}
	self, parent := c.Get(uint32(os.Getpid()))
	if self == nil || self.Binary != exe || self.Flags&event.FlagProcFS == 0 {
		t.Fatalf("self not in cache after the scan: %+v", self)
	}
	if parent == nil || parent.PID != uint32(os.Getppid()) || self.ParentExecID != parent.ExecID {
		t.Errorf("self's parent not linked: %+v", parent)
	}
}
