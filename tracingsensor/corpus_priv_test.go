package tracingsensor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/vigilsec/vigil/internal/kerneltest"
	"github.com/vigilsec/vigil/internal/manifest"
	"github.com/vigilsec/vigil/tracingpolicies"
)

// envTetragonPolicies names a folder of Tetragon policies (a checkout's
// examples/, for instance) that TestPrivXTetragonCorpus loads one file at a
// time; scripts/tetragon-compat.sh sets it.
const envTetragonPolicies = "VIGIL_TETRAGON_POLICIES"

// TestPrivXTetragonCorpus measures how many policy files of a Tetragon
// checkout load on this kernel: each is parsed, validated against the
// kernel's BTF and tracefs, loaded into a sensor (compiled, written,
// attached) and unloaded. It prints the fraction and the refusals grouped
// by cause. It fails when a refusal does not name the file, line and field
// it is about, since such a refusal would leave the user guessing.
func TestPrivXTetragonCorpus(t *testing.T) {
	dir := os.Getenv(envTetragonPolicies)
	if dir == "" {
		t.Skip("set " + envTetragonPolicies + " to a folder of Tetragon policies (scripts/tetragon-compat.sh)")
	}
	f := kerneltest.Features(t)
	ps, cache, log := sensorDeps(t, f)
	s, err := New(Config{Tracefs: f.Kernel.Tracefs, ProcRoot: "/proc"}, ps, f, cache, &countingSink{}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		t.Fatal(err)
	}
	opts := &tracingpolicies.ValidateOptions{Tracefs: os.DirFS(f.Kernel.Tracefs)}

	files, err := manifest.Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	var loaded, total int
	causes := map[string][]string{}
	for _, file := range files {
		problems := corpusLoad(s, file, spec, opts)
		if problems == nil {
			continue // not a policy file (docker-compose.yaml and the like)
		}
		total++
		rel, _ := filepath.Rel(dir, file)
		if len(problems) == 0 {
			loaded++
			continue
		}
		seen := map[string]bool{}
		for _, p := range problems {
			if !strings.HasPrefix(p, file+":") {
				t.Errorf("%s: refusal does not name the file and line: %s", rel, p)
			}
			c := refusalCause(p)
			if !seen[c] {
				seen[c] = true
				causes[c] = append(causes[c], rel)
			}
			t.Logf("refused: %s", strings.TrimPrefix(p, dir+"/"))
		}
	}
	keys := make([]string, 0, len(causes))
	for k := range causes {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if len(causes[keys[i]]) != len(causes[keys[j]]) {
			return len(causes[keys[i]]) > len(causes[keys[j]])
		}
		return keys[i] < keys[j]
	})
	var b strings.Builder
	fmt.Fprintf(&b, "tetragon corpus on %s: %d of %d policy files load (%.0f %%)\n", f.Kernel.Release, loaded, total, 100*float64(loaded)/float64(max(total, 1)))
	for _, k := range keys {
		fmt.Fprintf(&b, "  %3d  %s  (%s)\n", len(causes[k]), k, strings.Join(causes[k], ", "))
	}
	t.Log("\n" + b.String())
}

// corpusLoad parses, validates and loads the policies of one file and
// unloads them again. It returns nil for a file without TracingPolicy
// documents, else the problems (none when every policy loaded).
func corpusLoad(s *Sensor, file string, spec *btf.Spec, opts *tracingpolicies.ValidateOptions) []string {
	docs, err := manifest.ReadFile(file)
	if err == nil {
		policy := false
		for _, d := range docs {
			policy = policy || d.Kind == tracingpolicies.KindTracingPolicy || d.Kind == tracingpolicies.KindTracingPolicyNamespaced
		}
		if !policy {
			return nil
		}
	}
	problems := []string{}
	add := func(err error) {
		var errs manifest.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				problems = append(problems, e.Error())
			}
			return
		}
		problems = append(problems, err.Error())
	}
	policies, err := tracingpolicies.ParseFile(file)
	if err != nil {
		add(err)
	}
	for _, p := range policies {
		if p.Kind == tracingpolicies.KindTracingPolicyNamespaced && p.Namespace == "" {
			p.Namespace = "default" // as `kubectl apply` without -n would
		}
		if _, err := tracingpolicies.Validate(p, spec, opts); err != nil {
			add(err)
			continue
		}
		lp, err := s.Load(p, file)
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, file+":") {
					line = fmt.Sprintf("%s:%d: load: %s", file, p.Doc.LineOf("metadata.name"), line)
				}
				problems = append(problems, line)
			}
			continue
		}
		if err := s.Unload(lp.Key()); err != nil {
			problems = append(problems, fmt.Sprintf("%s: unload: %v", file, err))
		}
	}
	return problems
}

var (
	causeLocation = regexp.MustCompile(`^[^:]+:\d+: `)
	causeIndex    = regexp.MustCompile(`\[\d+\]`)
)

// refusalCause groups refusals: the field path without indexes, and the
// message up to its first explanation.
func refusalCause(problem string) string {
	p := causeLocation.ReplaceAllString(problem, "")
	field, msg, ok := strings.Cut(p, ": ")
	if !ok {
		return p
	}
	field = strings.TrimPrefix(causeIndex.ReplaceAllString(field, ""), "spec.")
	for _, sep := range []string{" is not supported", ": ", " (", "; "} {
		if i := strings.Index(msg, sep); i > 0 {
			msg = msg[:i]
		}
	}
	if len(msg) > 90 {
		msg = msg[:90] + "..."
	}
	return field + ": " + msg
}
