package kprobes

import (
	"testing"

	"github.com/vigilsec/vigil/internal/bpfsum"
)

// The committed objects must be what the sources under bpf/ compile to.
func TestBPFObjectsMatchSources(t *testing.T) {
	bpfsum.CheckPackage(t, "../bpf", "gen.go")
}
