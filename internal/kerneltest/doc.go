// Package kerneltest holds what tests that need root and a real kernel share:
// the gate that keeps them out of the unprivileged tier, feature-gated skips
// that cannot hide bugs, and the feature sets our test kernels must have.
//
// Privileged tests are named TestPriv* so the host and VM tiers can select
// them with -run '^TestPriv', and call Require first.
package kerneltest
