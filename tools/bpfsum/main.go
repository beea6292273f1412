// Command bpfsum writes a package's bpf_sources.sum: the hash of the BPF
// tree and the toolchain versions its BPF objects were built with. It runs as
// the last go:generate step of every package that embeds BPF objects.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/vigilsec/vigil/internal/bpfsum"
)

func main() {
	src := flag.String("src", ".", "directory holding the BPF sources")
	out := flag.String("out", "bpf_sources.sum", "file to write")
	flag.Parse()
	// The arguments are the package's C files, relative to -src; what they
	// include is found and hashed with them.
	r, err := bpfsum.Current(*src, flag.Args()...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bpfsum:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, r.Marshal(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "bpfsum:", err)
		os.Exit(1)
	}
}
