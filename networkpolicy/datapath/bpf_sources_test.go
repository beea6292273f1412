package datapath

import (
	"testing"

	"github.com/vigilsec/vigil/internal/bpfsum"
)

// The committed object must be what the sources under bpf/ compile to.
func TestBPFObjectsMatchSources(t *testing.T) {
	bpfsum.CheckPackage(t, "../../bpf", "gen.go")
}
