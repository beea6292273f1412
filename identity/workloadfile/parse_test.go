package workloadfile

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/vigilsec/vigil/identity/source"
)

func TestParseExample(t *testing.T) {
	data, err := os.ReadFile("testdata/workloads.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse("testdata/workloads.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	want := []source.Pod{
		{Key: "shop/web", Name: "web", Namespace: "shop", Labels: map[string]string{"app": "web", "tier": "front"},
			Workload: "web", WorkloadKind: "Workload", CgroupPath: "/system.slice/web.service",
			IPs: []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")}},
		{Key: "default/cron", Name: "cron", Namespace: "default", Workload: "cron", WorkloadKind: "Workload",
			CgroupPath: "/system.slice/cron.service"},
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

const head = "apiVersion: vigil.dev/v1alpha1\nkind: Workload\n"

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
	}{
		{"wrong api version", "apiVersion: vigil.dev/v1\nkind: Workload\nmetadata: {name: a}\nspec: {cgroupPath: /a}\n",
			[]string{`w.yaml:1: apiVersion: "vigil.dev/v1" is not the Workload API version (want vigil.dev/v1alpha1)`}},
		{"wrong kind", "apiVersion: vigil.dev/v1alpha1\nkind: Pod\nmetadata: {name: a}\n",
			[]string{`w.yaml:2: kind: "Pod" is not a kind this file may hold (want Workload)`}},
		{"missing kind", "apiVersion: vigil.dev/v1alpha1\nmetadata: {name: a}\n",
			[]string{`w.yaml:1: kind: missing kind (want Workload)`}},
		{"unknown field with a suggestion", head + "metadata: {name: a}\nspec:\n  cgroupPth: /a\n",
			[]string{`w.yaml:5: spec.cgroupPth: unknown field "cgroupPth" (did you mean "cgroupPath"?)`}},
		{"missing name and path", head + "metadata: {}\nspec: {}\n",
			[]string{`w.yaml:3: metadata.name: required`, `w.yaml:4: spec.cgroupPath: required: the cgroup v2 path of the workload, as /proc/PID/cgroup shows it (such as /system.slice/web.service)`}},
		{"relative path", head + "metadata: {name: a}\nspec:\n  cgroupPath: system.slice/a.service\n",
			[]string{`w.yaml:5: spec.cgroupPath: "system.slice/a.service" must be absolute, as /proc/PID/cgroup shows it (such as /system.slice/web.service)`}},
		{"unclean path", head + "metadata: {name: a}\nspec:\n  cgroupPath: /system.slice/../a/\n",
			[]string{`w.yaml:5: spec.cgroupPath: "/system.slice/../a/" is not a clean path (want "/a")`}},
		{"bad address", head + "metadata: {name: a}\nspec:\n  cgroupPath: /a\n  ips: [10.0.0.1, 10.0.0.256]\n",
			[]string{`w.yaml:6: spec.ips[1]: "10.0.0.256" is not an IP address`}},
		{"ips not a list", head + "metadata: {name: a}\nspec:\n  cgroupPath: /a\n  ips: 10.0.0.1\n",
			[]string{`w.yaml:6: spec.ips: expected a list, got "10.0.0.1"`}},
		{"bad name and namespace", head + "metadata:\n  name: Web_1\n  namespace: Shop.1\nspec: {cgroupPath: /a}\n",
			[]string{`w.yaml:4: metadata.name: "Web_1": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`,
				`w.yaml:5: metadata.namespace: "Shop.1": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`}},
		{"bad label", head + "metadata:\n  name: a\n  labels: {\"-x\": \"a b\"}\nspec: {cgroupPath: /a}\n",
			[]string{`w.yaml:5: metadata.labels.-x: label key "-x": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`,
				`w.yaml:5: metadata.labels.-x: label value "a b": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`}},
		{"twice the same name", head + "metadata: {name: a}\nspec: {cgroupPath: /a}\n---\n" + head + "metadata: {name: a}\nspec: {cgroupPath: /b}\n",
			[]string{`w.yaml:8: metadata.name: workload default/a is defined twice (first at line 3)`}},
		{"twice the same cgroup", head + "metadata: {name: a}\nspec: {cgroupPath: /a}\n---\n" + head + "metadata: {name: b}\nspec: {cgroupPath: /a}\n",
			[]string{`w.yaml:9: spec.cgroupPath: cgroup /a already belongs to the workload at line 4`}},
		{"syntax", head + "metadata: {name: a\n", []string{`w.yaml:2: invalid YAML: did not find expected ',' or '}'`}},
		{"not a mapping", "- a\n", []string{`w.yaml:1: a document must be a mapping with apiVersion and kind, got a list`}},
		{"duplicate key", head + "metadata: {name: a}\nspec:\n  cgroupPath: /a\n  cgroupPath: /b\n",
			[]string{`w.yaml:6: spec.cgroupPath: duplicate key (first at line 5)`}},
		{"duplicate key in a document of the wrong kind", "apiVersion: vigil.dev/v1alpha1\nkind: Pod\nkind: Workload\n",
			[]string{`w.yaml:2: kind: "Pod" is not a kind this file may hold (want Workload)`, `w.yaml:3: kind: duplicate key (first at line 2)`}},
		{"YAML 1.1 label", head + "metadata:\n  name: a\n  labels: {canary: no}\nspec: {cgroupPath: /a}\n",
			[]string{`w.yaml:5: metadata.labels.canary: no is the boolean false in YAML 1.1 (kubectl, the API server), not a string: quote it ("no")`}},
		{"an item of a List", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: vigil.dev/v1alpha1\n  kind: Workload\n  metadata: {name: a}\n  spec: {cgroupPath: a}\n",
			[]string{`w.yaml:7: items[0].spec.cgroupPath: "a" must be absolute, as /proc/PID/cgroup shows it (such as /system.slice/web.service)`}},
		{"empty", "\n", []string{`w.yaml:1: the file is empty`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pods, err := Parse("w.yaml", []byte(tt.in))
			if err == nil {
				t.Fatalf("accepted: %+v", pods)
			}
			if pods != nil {
				t.Errorf("workloads returned with errors: %+v", pods)
			}
			if diff := cmp.Diff(tt.want, strings.Split(err.Error(), "\n")); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzParse: any input gives workloads that hold up, or located errors;
// never a panic.
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("testdata/workloads.yaml"); err == nil {
		f.Add(data)
	}
	f.Add([]byte(head + "metadata: {name: a}\nspec: {cgroupPath: /a, ips: [::1]}\n"))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte(head + "metadata: &a {name: *a}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pods, err := Parse("f.yaml", data)
		if err != nil {
			if pods != nil {
				t.Fatal("workloads with an error")
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "f.yaml") {
					t.Fatalf("error line without its file: %q", line)
				}
			}
			return
		}
		for _, p := range pods {
			if p.Name == "" || p.Namespace == "" || !strings.HasPrefix(p.CgroupPath, "/") || p.Key != p.Namespace+"/"+p.Name {
				t.Fatalf("accepted a workload that does not hold up: %+v", p)
			}
		}
	})
}

type sinkRec struct {
	mu    sync.Mutex
	pods  []source.Pod
	fails []string
	ch    chan struct{}
}

func (s *sinkRec) poke() {
	select {
	case s.ch <- struct{}{}:
	default:
	}
}
func (s *sinkRec) Replace(_ string, p []source.Pod) {
	s.mu.Lock()
	s.pods = p
	s.mu.Unlock()
	s.poke()
}
func (s *sinkRec) Upsert(string, source.Pod) {}
func (s *sinkRec) Delete(string, string)     {}
func (s *sinkRec) Synced(string)             {}
func (s *sinkRec) Failed(_, _ string, err error) {
	s.mu.Lock()
	s.fails = append(s.fails, err.Error())
	s.mu.Unlock()
	s.poke()
}
func (s *sinkRec) Recovered(string) {}

func (s *sinkRec) wait(t *testing.T, what string, cond func(*sinkRec) bool) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		s.mu.Lock()
		ok := cond(s)
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-s.ch:
		case <-deadline:
			t.Fatalf("waiting for %s: pods %+v, failures %q", what, s.pods, s.fails)
		}
	}
}

// TestSourceWatch follows edits, keeps the last good workloads of a file
// that breaks, and drops those of a removed file.
func TestSourceWatch(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.yaml")
	doc := func(name, path string) string {
		return head + "metadata: {name: " + name + "}\nspec: {cgroupPath: " + path + "}\n"
	}
	write := func(f, s string) {
		// Replace by rename, as editors and config management do.
		tmp := f + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f); err != nil {
			t.Fatal(err)
		}
	}
	write(a, doc("one", "/one"))
	s := NewSource("workloads", []string{a, filepath.Join(dir, "more")})
	if err := os.Mkdir(filepath.Join(dir, "more"), 0o755); err != nil {
		t.Fatal(err)
	}
	sink := &sinkRec{ch: make(chan struct{}, 10)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx, sink)
	names := func(s *sinkRec) string {
		var n []string
		for _, p := range s.pods {
			n = append(n, p.Name)
		}
		return strings.Join(n, ",")
	}
	sink.wait(t, "one", func(s *sinkRec) bool { return names(s) == "one" })

	write(a, doc("two", "/two"))
	sink.wait(t, "two", func(s *sinkRec) bool { return names(s) == "two" })

	write(a, head+"metadata: {name: two}\nspec: {cgroupPath: relative}\n")
	sink.wait(t, "the error", func(s *sinkRec) bool {
		return len(s.fails) > 0 && strings.Contains(s.fails[len(s.fails)-1], a+":4: spec.cgroupPath:")
	})
	sink.mu.Lock()
	if names(sink) != "two" {
		t.Errorf("after a bad edit: %q, want the last good workloads", names(sink))
	}
	sink.mu.Unlock()

	b := filepath.Join(dir, "more", "b.yml")
	write(b, doc("three", "/three"))
	sink.wait(t, "a file in the directory", func(s *sinkRec) bool { return names(s) == "three,two" || names(s) == "two,three" })

	if err := os.Remove(b); err != nil {
		t.Fatal(err)
	}
	sink.wait(t, "the removal", func(s *sinkRec) bool { return names(s) == "two" })
}

// TestSourceInPlaceWrite writes a file in place, in two steps a moment
// apart (as an editor that truncates and writes does): the cut file is not
// reported as broken, its workloads stay meanwhile, and the new ones come.
func TestSourceInPlaceWrite(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.yaml")
	doc := func(name, path string) string {
		return head + "metadata: {name: " + name + "}\nspec: {cgroupPath: " + path + "}\n"
	}
	if err := os.WriteFile(a, []byte(doc("one", "/one")), 0o644); err != nil {
		t.Fatal(err)
	}
	s := NewSource("workloads", []string{dir})
	sink := &sinkRec{ch: make(chan struct{}, 10)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx, sink)
	names := func(s *sinkRec) string {
		var n []string
		for _, p := range s.pods {
			n = append(n, p.Name)
		}
		return strings.Join(n, ",")
	}
	sink.wait(t, "one", func(s *sinkRec) bool { return names(s) == "one" })
	f, err := os.OpenFile(a, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(40 * time.Millisecond)
	sink.mu.Lock()
	if got := names(sink); got != "one" {
		t.Errorf("while the file is empty: %q, want the last good workloads", got)
	}
	sink.mu.Unlock()
	if _, err := f.WriteString(doc("two", "/two")); err != nil {
		t.Fatal(err)
	}
	f.Close()
	sink.wait(t, "two", func(s *sinkRec) bool { return names(s) == "two" })
	time.Sleep(2 * settle)
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.fails) > 0 {
		t.Errorf("a file written in two steps was reported broken: %q", sink.fails)
	}
}
