// Command websum writes ui/assets/SOURCES.sum: the hashes of the web UI's
// sources and of the assets built from them. It runs as the last
// go:generate step of the ui package.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vigilsec/vigil/internal/websum"
)

func main() {
	web := flag.String("web", "web", "directory of the front-end's sources")
	assets := flag.String("assets", "assets", "directory of the built assets")
	flag.Parse()
	r, err := websum.Current(*web, *assets)
	if err != nil {
		fmt.Fprintln(os.Stderr, "websum:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(filepath.Join(*assets, websum.FileName), r.Marshal(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "websum:", err)
		os.Exit(1)
	}
}
