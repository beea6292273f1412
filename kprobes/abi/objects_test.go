package abi

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
)

// Objects lists every generated object of the package, with the hash of
// the file that is committed.
func TestObjects(t *testing.T) {
	files, err := filepath.Glob("*_bpfel.o")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, o := range Objects() {
		got[o.Name] = o.SHA256
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if want := hex.EncodeToString(sum[:]); got[f] != want {
			t.Errorf("%s: Objects says %q, the file hashes to %s (add new objects to Objects)", f, got[f], want)
		}
	}
	if len(got) != len(files) {
		t.Errorf("Objects lists %d objects, the package has %d", len(got), len(files))
	}
}
