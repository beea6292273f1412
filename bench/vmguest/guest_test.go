//go:build benchvm

package vmguest

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"testing"
)

// GuestEnv carries the command line of the vigil-bench run, as a JSON
// array, from the harness through vmtest into the guest.
const GuestEnv = "VIGIL_BENCH_GUEST"

// TestBenchInVM runs the benchmark the harness asked for. It is not part of
// the suite: only `make bench` builds it (-tags benchvm) and only inside a
// vmtest guest, whose root file system is a throwaway initramfs.
func TestBenchInVM(t *testing.T) {
	var argv []string
	if err := json.Unmarshal([]byte(os.Getenv(GuestEnv)), &argv); err != nil || len(argv) == 0 {
		t.Fatalf("%s: want the vigil-bench command line as a JSON array, got %q (%v)", GuestEnv, os.Getenv(GuestEnv), err)
	}
	if h, _ := os.Hostname(); h != "vmtest" {
		t.Fatalf("hostname %q: this test only runs inside a vmtest guest (it writes /etc/shadow)", h)
	}
	// The file-monitored workload opens /etc/shadow, which the
	// initramfs does not have.
	if _, err := os.Stat("/etc/shadow"); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile("/etc/shadow", []byte("root:*:19000:0:99999:7:::\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %v", argv, err)
	}
}
