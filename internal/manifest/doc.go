// Package manifest is the one reader of users' YAML and JSON files (tracing
// and network policies, Workload files, rule exceptions, Kubernetes
// manifests): it splits multi-document files and decodes each document
// strictly into Go types while keeping source positions, so that every
// problem can be reported as
//
//	FILE:LINE: field.path[0].name: what is wrong
//
// Nothing is read differently from how it looks, and nothing is silently
// ignored:
//   - empty files, NUL bytes, control characters and invalid UTF-8 are
//     refused with their line;
//   - a key given twice in one mapping is refused with both lines, at any
//     depth;
//   - unknown fields and values of the wrong shape are refused; fields the
//     API server sets (status, metadata.uid, metadata.managedFields, ...)
//     are accepted where a type has no place for them;
//   - values are read as YAML 1.2 (JSON documents too), and a plain scalar
//     that tools reading YAML 1.1 (kubectl, the API server, Tetragon) take
//     differently where a string is expected — yes, no, on, off, y, n,
//     1.10, 010 — is refused with a hint to quote it;
//   - List documents (kind List, NetworkPolicyList, ...) are expanded into
//     their items, whose problems are reported under items[N].
//
// The package reads bytes only; it knows no kinds.
package manifest
