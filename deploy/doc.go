// Package deploy holds what puts Vigil on a cluster: the Helm chart
// (helm/vigil), the manifests it renders with default values
// (kubernetes/vigil.yaml), the CustomResourceDefinitions of our policy kinds
// (crds/) and the container image build (Dockerfile).
//
// It has no code, only tests: every manifest decodes strictly into the
// Kubernetes API types, the CRD schemas are generated from the Go policy
// types and accept every example policy, the chart renders, and the
// Dockerfile copies what exists. Regenerate the CRDs and the rendered
// manifests with `go test ./deploy -update`.
package deploy
