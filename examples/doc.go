// Package examples embeds the example policies, so that tests load them on
// every kernel, inside the VM tier's initramfs too, where the source tree
// is not.
package examples

import "embed"

// TracingPolicies holds tracingpolicy/*.yaml.
//
//go:embed tracingpolicy/*.yaml
var TracingPolicies embed.FS

// DeathStar holds the Death Star demo's network policy (deathstar/policy.yaml).
//
//go:embed deathstar/policy.yaml
var DeathStar embed.FS

// DeathStarL7 holds the demo's L7 policy as Cilium's tutorial publishes it
// (deathstar-l7/policy.yaml): only POST /v1/request-landing.
//
//go:embed deathstar-l7/policy.yaml
var DeathStarL7 embed.FS
