package keep_test

import (
	"os"
	"testing"

	"github.com/vigilsec/vigil/agent/agenttest"
)

// The test binary doubles as the helper program of agenttest.RunHelper and
// as the agent of agenttest.StartAgentProcess.
func TestMain(m *testing.M) { os.Exit(agenttest.Main(m)) }
