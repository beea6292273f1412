// Package tracingpolicies holds the TracingPolicy types (Tetragon's
// cilium.io/v1alpha1 schema and vigil.dev/v1alpha1), their strict YAML
// parsing, validation with field paths and line numbers, and the compilation
// of selectors into the binary map contents the BPF programs evaluate.
//
// Everything here is pure: no kernel access, no root. Loaded kernel state
// belongs to the sensor that consumes the compiled form.
package tracingpolicies
