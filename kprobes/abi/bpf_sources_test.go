package abi

import (
	"testing"

	"github.com/vigilsec/vigil/internal/bpfsum"
)

// The committed objects must be what the C files of this folder compile to.
func TestBPFObjectsMatchSources(t *testing.T) {
	bpfsum.CheckPackage(t, ".", "gen.go")
}
