package agent

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"
)

func TestValidateBPFPinDir(t *testing.T) {
	for _, tc := range []struct{ dir, want string }{
		{"/sys/fs/bpf/vigil", ""},
		{"/run/vigil/bpf", ""},
		{"vigil", `--bpf-pin-dir: "vigil" must be an absolute path of a directory (such as /sys/fs/bpf/vigil)`},
		{"", `--bpf-pin-dir: "" must be an absolute path`},
		{"/", `--bpf-pin-dir: "/" must be an absolute path`},
	} {
		cfg := DefaultConfig()
		cfg.NodeName = "n"
		cfg.BPFPinDir = tc.dir
		err := cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.dir, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: error %v, want one containing %q", tc.dir, err, tc.want)
		}
	}
}

// The flag is a config file key; --cleanup-pins, an action, is not.
func TestConfigFileKeepEnforcement(t *testing.T) {
	fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	keep := fs.Bool("keep-enforcement-on-exit", false, "")
	dir := fs.String("bpf-pin-dir", "/sys/fs/bpf/vigil", "")
	fs.Bool("cleanup-pins", false, "")
	p := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(p, []byte("keep-enforcement-on-exit: true\nbpf-pin-dir: /sys/fs/bpf/other\n"), 0o644)
	if err := ApplyConfigFile(p, fs); err != nil {
		t.Fatal(err)
	}
	if !*keep || *dir != "/sys/fs/bpf/other" {
		t.Errorf("keep %v dir %q", *keep, *dir)
	}
	os.WriteFile(p, []byte("cleanup-pins: true\n"), 0o644)
	if err := ApplyConfigFile(p, fs); err == nil || !strings.Contains(err.Error(), "c.yaml:1: cleanup-pins: unknown key") {
		t.Errorf("cleanup-pins in the config file: %v, want an unknown key", err)
	}
}

// Generation directories are gen-N, oldest first; nothing else under the
// pin directory counts.
func TestGenerations(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"gen-2", "gen-10", "gen-x", "other", "gen-1"} {
		os.Mkdir(filepath.Join(dir, d), 0o700)
	}
	os.WriteFile(filepath.Join(dir, "gen-3"), nil, 0o600) // a file, not a generation
	got, last, err := generations(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "gen-1"), filepath.Join(dir, "gen-2"), filepath.Join(dir, "gen-10")}
	if diff := cmp.Diff(want, got); diff != "" || last != 10 {
		t.Errorf("generations (-want +got):\n%s; last %d, want 10", diff, last)
	}
	if got, last, err := generations(filepath.Join(dir, "missing")); err != nil || got != nil || last != 0 {
		t.Errorf("a missing directory: %v %d %v, want none", got, last, err)
	}
}

// The clean-up touches only a BPF file system: a directory elsewhere is
// left as it is, whatever its entries are called.
func TestCleanupPinsOnlyOnBPFFS(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "gen-1"), 0o700)
	if _, err := CleanupPins(dir); err == nil || !strings.Contains(err.Error(), "is not on a BPF file system") {
		t.Errorf("clean-up of %s: %v, want a refusal", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "gen-1")); err != nil {
		t.Errorf("gen-1 after a refused clean-up: %v", err)
	}
	if n, err := CleanupPins(filepath.Join(dir, "missing")); n != 0 || err != nil {
		t.Errorf("clean-up of a missing directory: %d %v, want nothing to do", n, err)
	}
}

// --keep-enforcement-on-exit with a pin directory that cannot be one (no
// bpffs can be mounted by an unprivileged test, or it is a file) stops the
// start with the flag's name.
func TestOpenHandoverRefusesFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o600)
	log := logrus.New()
	log.SetOutput(io.Discard)
	_, err := openHandover(filepath.Join(f, "vigil"), true, log)
	if err == nil || !strings.HasPrefix(err.Error(), "--keep-enforcement-on-exit: ") {
		t.Errorf("pin directory under a file: %v, want an error naming the flag", err)
	}
}
