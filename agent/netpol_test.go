package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/vigilsec/vigil/networkpolicy"
	"github.com/vigilsec/vigil/networkpolicy/datapath"
)

const filePolicy = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: %s, namespace: shop}
spec: {podSelector: {matchLabels: {app: %s}}}
`

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestNetpolFilesParseOnlyWhatChanged checks that reading the policy files
// again gives the same policies (the same values, so the compiler leaves
// them alone) for the files that did not change, new ones for the file that
// did, and every problem of a broken file.
func TestNetpolFilesParseOnlyWhatChanged(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	writeFile(t, a, strings.NewReplacer("%s", "web").Replace(filePolicy))
	writeFile(t, b, strings.Replace(strings.Replace(filePolicy, "%s", "db", 1), "%s", "db", 1))
	f := newNetpolFiles([]string{dir})
	byName := func(res *networkpolicy.Resources) map[string]*networkpolicy.Policy {
		out := map[string]*networkpolicy.Policy{}
		for _, p := range res.Policies {
			out[p.Name] = p
		}
		return out
	}
	first, err := f.load()
	if err != nil {
		t.Fatal(err)
	}
	again, err := f.load()
	if err != nil {
		t.Fatal(err)
	}
	p1, p2 := byName(first), byName(again)
	if len(p1) != 2 || p1["web"] != p2["web"] || p1["db"] != p2["db"] {
		t.Fatalf("unchanged files parsed again: %v then %v", p1, p2)
	}
	writeFile(t, b, strings.Replace(strings.Replace(filePolicy, "%s", "db", 1), "%s", "store", 1))
	edited, err := f.load()
	if err != nil {
		t.Fatal(err)
	}
	p3 := byName(edited)
	if p3["web"] != p1["web"] || p3["db"] == p1["db"] {
		t.Errorf("after b.yaml changed: web reparsed %v, db reparsed %v; want only db", p3["web"] != p1["web"], p3["db"] != p1["db"])
	}
	writeFile(t, b, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: db, namespace: shop}\nspec: {podSelector: {matchLabels: {app: db}}, policyTypes: [Sideways]}\n")
	_, err = f.load()
	if err == nil || !strings.Contains(err.Error(), b+":4: spec.policyTypes[0]") {
		t.Errorf("broken b.yaml: %v", err)
	}
}

// gatherMetrics returns every series of reg as name{labels} -> value (the
// count for histograms).
func gatherMetrics(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			name := mf.GetName()
			if len(labels) > 0 {
				name += "{" + strings.Join(labels, ",") + "}"
			}
			out[name] = metricValue(m)
		}
	}
	return out
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

// TestNetpolMetrics checks what an apply records.
func TestNetpolMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newNetpolMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	st := datapath.ApplyStats{PolicyEntriesWritten: 5, PolicyEntriesRemoved: 2, IPCacheUpdated: 1, CgroupsUpdated: 1}
	times := datapath.ApplyTimes{Compile: time.Millisecond, Flatten: time.Millisecond, Write: time.Millisecond}
	m.observe(time.Millisecond, st, times, 4*time.Millisecond, time.Now().Add(-10*time.Millisecond).UnixNano(), nil)
	m.observe(0, datapath.ApplyStats{}, datapath.ApplyTimes{}, time.Millisecond, 0, os.ErrInvalid)
	m.size(12, 3, 40)
	got := gatherMetrics(t, reg)
	want := map[string]float64{
		"vigil_netpol_applies_total{result=ok}":                    1,
		"vigil_netpol_applies_total{result=error}":                 1,
		"vigil_netpol_apply_duration_seconds":                      2,
		"vigil_netpol_apply_stage_duration_seconds{stage=compile}": 2,
		"vigil_netpol_apply_stage_duration_seconds{stage=flatten}": 2,
		"vigil_netpol_apply_stage_duration_seconds{stage=parse}":   2,
		"vigil_netpol_apply_stage_duration_seconds{stage=write}":   2,
		"vigil_netpol_change_in_force_seconds":                     1,
		"vigil_netpol_apply_entries":                               2,
		"vigil_netpol_map_writes_total{map=policy,op=put}":         5,
		"vigil_netpol_map_writes_total{map=policy,op=delete}":      2,
		"vigil_netpol_map_writes_total{map=ipcache,op=put}":        1,
		"vigil_netpol_map_writes_total{map=cgroups,op=put}":        1,
		"vigil_netpol_file_errors_total":                           0,
		"vigil_netpol_identities":                                  12,
		"vigil_netpol_policy_maps":                                 3,
		"vigil_netpol_policy_entries":                              40,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
	if _, err := newNetpolMetrics(reg); err == nil {
		t.Error("a second manager's metrics registered on the same registry")
	}
}
