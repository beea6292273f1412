// Package buildinfo holds what the binary was built from: the version and
// commit the Makefile sets with -ldflags, the Go release, and the hashes of
// the embedded BPF objects. It has no other state.
package buildinfo

import (
	"runtime"
	"runtime/debug"

	"github.com/vigilsec/vigil/kprobes/abi"
)

// Set by the Makefile:
//
//	-ldflags "-X github.com/vigilsec/vigil/internal/buildinfo.Version=v0.3.0
//	          -X github.com/vigilsec/vigil/internal/buildinfo.Commit=3b61718"
var (
	// Version is the release, "dev" for a build without -ldflags.
	Version = "dev"
	// Commit is the git commit, with "-dirty" for uncommitted changes.
	Commit = ""
)

// Info is what `vigil version` prints.
type Info struct {
	Version    string       `json:"version"`
	Commit     string       `json:"commit"`
	Go         string       `json:"go"`
	BPFObjects []abi.Object `json:"bpf_objects"`
}

// Get returns the build information of this binary. Without -ldflags, the
// commit comes from the Go toolchain's VCS stamp when the build had one.
func Get() Info {
	commit := Commit
	if commit == "" {
		commit = "unknown"
		if bi, ok := debug.ReadBuildInfo(); ok {
			var rev, dirty string
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					rev = s.Value
				case "vcs.modified":
					if s.Value == "true" {
						dirty = "-dirty"
					}
				}
			}
			if rev != "" {
				commit = rev + dirty
			}
		}
	}
	return Info{Version: Version, Commit: commit, Go: runtime.Version(), BPFObjects: abi.Objects()}
}
