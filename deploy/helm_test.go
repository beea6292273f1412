package deploy

import (
	"fmt"
	"path"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
)

// The chart is rendered by Helm's own engine (helm.sh/helm/v4), as
// `helm template` renders it, with no cluster to ask.

const chartDir = "helm/vigil"

type release struct {
	Name, Namespace      string
	IsInstall, IsUpgrade bool
}

// render returns the chart's documents, one string per template file, for
// values coalesced over the chart's values.yaml as helm install --set does.
func render(t *testing.T, rel release, override map[string]any) map[string]string {
	t.Helper()
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	if override == nil {
		override = map[string]any{}
	}
	vals, err := util.ToRenderValues(chrt, override, common.ReleaseOptions{
		Name: rel.Name, Namespace: rel.Namespace, Revision: 1, IsInstall: rel.IsInstall, IsUpgrade: rel.IsUpgrade,
	}, nil)
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	rendered, err := engine.Render(chrt, vals)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	out := map[string]string{}
	for name, body := range rendered {
		// Keys are chart/templates/file; helm template leaves out
		// NOTES.txt, as we do.
		base := path.Base(name)
		if strings.HasSuffix(base, ".txt") {
			continue
		}
		out[base] = body
	}
	return out
}

// joined concatenates rendered files as helm template prints them.
func joined(files map[string]string) string {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		body := strings.TrimSpace(files[n])
		if body == "" {
			continue
		}
		fmt.Fprintf(&b, "---\n# Source: vigil/templates/%s\n%s\n", n, body)
	}
	return b.String()
}
