package ui

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/internal/websum"
)

// The committed assets were built from the committed sources: run
// make generate (or go generate ./ui) after changing ui/web.
func TestAssetsMatchSources(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("assets", websum.FileName))
	if err != nil {
		t.Fatal(err)
	}
	want, err := websum.Parse(data)
	if err != nil {
		t.Fatalf("assets/%s: %v", websum.FileName, err)
	}
	got, err := websum.Current("web", "assets")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ui/assets do not match ui/web (run go generate ./ui) (-recorded +now):\n%s", diff)
	}
	for _, f := range []string{"index.html", "app.js", "layout-worker.js", "style.css"} {
		if _, err := assets.Open("assets/" + f); err != nil {
			t.Errorf("embedded assets lack %s: %v", f, err)
		}
	}
}
