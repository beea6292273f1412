package spool

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/internal/kerneltest"
)

func TestSpoolDirPermissions(t *testing.T) {
	base := t.TempDir()
	mode := func(p string) os.FileMode {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}

	fresh := filepath.Join(base, "new", "spool")
	s, err := Open(fresh, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if m := mode(fresh); m != 0o700 {
		t.Errorf("new spool directory is %04o, want 0700", m)
	}

	loose := filepath.Join(base, "loose")
	os.Mkdir(loose, 0o755)
	os.Chmod(loose, 0o777)
	var logged bytes.Buffer
	log := logrus.New()
	log.SetOutput(&logged)
	s, err = Open(loose, Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if m := mode(loose); m != 0o700 {
		t.Errorf("existing 0777 spool directory left %04o, want 0700", m)
	}
	if !strings.Contains(logged.String(), "was=0777") {
		t.Errorf("tightening not logged: %q", logged.String())
	}

	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := Open(file, Options{}); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a file as spool directory: %v", err)
	}

	if os.Geteuid() != 0 {
		kerneltest.Skip(t, "giving a directory to another user needs root")
	}
	theirs := filepath.Join(base, "theirs")
	os.Mkdir(theirs, 0o700)
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	_, err = Open(theirs, Options{})
	if err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Errorf("a directory of another user: %v, want it refused", err)
	}
	if m := mode(theirs); m != 0o700 {
		t.Errorf("refused directory changed to %04o", m)
	}
}
