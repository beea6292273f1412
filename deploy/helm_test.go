package deploy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	"sigs.k8s.io/yaml"
)

// The chart is rendered without helm: text/template with sprig's functions
// and Helm's own include, toYaml and required, written here with Helm's
// semantics. A chart that used anything else would fail to parse.

const chartDir = "helm/vigil"

type chartMeta struct {
	Name, Version, AppVersion string
}

type release struct {
	Name, Namespace, Service string
	IsInstall, IsUpgrade     bool
}

// render returns the chart's documents, one string per template file (in
// file order), for values merged over the chart's values.yaml.
func render(t *testing.T, rel release, override map[string]any) map[string]string {
	t.Helper()
	var meta chartMeta
	readYAML(t, filepath.Join(chartDir, "Chart.yaml"), &map[string]any{})
	var raw map[string]any
	readYAML(t, filepath.Join(chartDir, "Chart.yaml"), &raw)
	meta.Name, _ = raw["name"].(string)
	meta.Version, _ = raw["version"].(string)
	meta.AppVersion, _ = raw["appVersion"].(string)
	var values map[string]any
	readYAML(t, filepath.Join(chartDir, "values.yaml"), &values)
	values = mergeValues(values, override)

	root := template.New("chart")
	funcs := sprig.TxtFuncMap()
	funcs["toYaml"] = func(v any) string {
		b, err := yaml.Marshal(v)
		if err != nil {
			return ""
		}
		return strings.TrimSuffix(string(b), "\n")
	}
	funcs["include"] = func(name string, data any) (string, error) {
		var b bytes.Buffer
		err := root.ExecuteTemplate(&b, name, data)
		return b.String(), err
	}
	funcs["required"] = func(msg string, v any) (any, error) {
		if v == nil || v == "" {
			return nil, fmt.Errorf("%s", msg)
		}
		return v, nil
	}
	root.Funcs(funcs).Option("missingkey=zero")
	files, err := filepath.Glob(filepath.Join(chartDir, "templates", "*"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := root.New(filepath.Base(f)).Parse(string(b)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	data := map[string]any{
		"Values":       values,
		"Release":      rel,
		"Chart":        meta,
		"Capabilities": map[string]any{},
	}
	out := map[string]string{}
	for _, f := range files {
		name := filepath.Base(f)
		if strings.HasPrefix(name, "_") {
			continue
		}
		var b bytes.Buffer
		if err := root.ExecuteTemplate(&b, name, data); err != nil {
			t.Fatalf("render %s: %v", name, err)
		}
		out[name] = b.String()
	}
	return out
}

// mergeValues overlays o on v, recursively for maps, as helm --set does.
func mergeValues(v, o map[string]any) map[string]any {
	out := map[string]any{}
	for k, x := range v {
		out[k] = x
	}
	for k, x := range o {
		if om, ok := x.(map[string]any); ok {
			if vm, ok := out[k].(map[string]any); ok {
				out[k] = mergeValues(vm, om)
				continue
			}
		}
		out[k] = x
	}
	return out
}

func readYAML(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
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
