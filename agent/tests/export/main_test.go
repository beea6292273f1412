// Package export_test runs the agent with --export-format tetragon on the
// host and VM kernels and parses every line it writes with Tetragon's schema.
package export_test

import (
	"os"
	"testing"

	"github.com/vigilsec/vigil/agent/agenttest"
)

// The test binary doubles as the helper program of agenttest.RunHelper.
func TestMain(m *testing.M) { os.Exit(agenttest.Main(m)) }
