package tracingsensor

import "io/fs"

// defaultPolicies are the agent's embedded default policies
// (agent/defaultpolicies), which the tests load as users get them. The
// agent package imports this one, so only the external test package can
// import it and hand them over (defaults_ext_test.go).
var defaultPolicies fs.FS

// SetDefaultPolicies is how the external test package sets defaultPolicies.
func SetDefaultPolicies(f fs.FS) { defaultPolicies = f }
