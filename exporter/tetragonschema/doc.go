// Package tetragonschema checks JSON lines against Tetragon's published event
// schema (the messages of github.com/cilium/tetragon's api/v1/tetragon),
// strictly: an unknown field, a value of the wrong type, an enum name the
// schema does not have or a duplicate key is an error naming the field.
//
// The schema is data, tetragon.schema.json, generated from Tetragon's .proto
// files by ./genschema (see go:generate in schema.go). The lines are parsed
// with protojson into dynamic messages, so the check is the one Tetragon's
// own Go types apply. This package must not depend on the encoder: it is
// the independent judge of what the encoder writes.
package tetragonschema
