package tracingsensor_test

import (
	"github.com/vigilsec/vigil/agent"
	"github.com/vigilsec/vigil/tracingsensor"
)

func init() { tracingsensor.SetDefaultPolicies(agent.DefaultPolicies) }
