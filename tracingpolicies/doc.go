// Package tracingpolicies holds the TracingPolicy types (Tetragon's
// cilium.io/v1alpha1 schema and vigil.dev/v1alpha1), their strict YAML
// parsing, validation with field paths and line numbers, and the compilation
// of selectors into the binary map contents the BPF programs evaluate.
//
// Parse and ParseFile decode documents and check everything that does not
// depend on the kernel; the Policy they return carries resolved Hooks for
// the compiler and its source document for later errors. Validate checks a
// policy against a kernel's BTF (and, optionally, tracefs formats) that the
// caller loads and passes in. The limits of the language are the constants
// of limits.go.
//
// Everything here is pure: no kernel access, no root. Loaded kernel state
// belongs to the sensor that consumes the compiled form.
package tracingpolicies
