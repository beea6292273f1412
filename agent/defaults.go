package agent

import (
	"embed"
	"io/fs"
)

//go:embed defaultpolicies/*.yaml
var defaultPolicies embed.FS

// DefaultPolicies are the tracing policies `vigil agent` loads unless told
// --no-default-policies. They load on every kernel Vigil supports.
var DefaultPolicies fs.FS = mustSub(defaultPolicies, "defaultpolicies")

func mustSub(f fs.FS, dir string) fs.FS {
	s, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return s
}
