package filter

import (
	"errors"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFilterMatches(t *testing.T) {
	evs := session()
	tests := []struct {
		name        string
		allow, deny string
		want        []string // events that pass, sorted
	}{
		{name: "no lists", want: names(evs)},
		{
			name:  "allow namespace",
			allow: `{"namespace":["shop"]}`,
			want:  []string{"alert", "exec_cat", "exec_psql", "exec_sh", "exit_cat", "flow_psql", "kprobe"},
		},
		{
			name:  "empty namespace is the host",
			allow: `{"namespace":[""],"event_set":["PROCESS_EXEC"]}`,
			want:  []string{"exec_sshd"},
		},
		{
			name:  "lines are ORed",
			allow: "{\"namespace\":[\"db\"]}\n{\"binary_regex\":[\"sshd$\"]}",
			want:  []string{"exec_postgres", "exec_sshd", "lsm_sshd"},
		},
		{
			name:  "keys are ANDed",
			allow: `{"namespace":["shop"],"event_set":["process_exit","PROCESS_KPROBE"]}`,
			want:  []string{"exit_cat", "kprobe"},
		},
		{
			name:  "deny wins",
			allow: `{"namespace":["shop"]}`,
			deny:  `{"binary_regex":["^/bin/"]}`,
			want:  []string{"exec_psql", "flow_psql"},
		},
		{
			name: "deny only",
			deny: "# noisy host daemons\n\n{\"binary_regex\":[\"sshd\"]}",
			want: []string{"alert", "exec_cat", "exec_postgres", "exec_psql", "exec_sh", "exit_cat", "flow_psql", "kprobe", "lost"},
		},
		{
			name:  "labels selector",
			allow: `{"labels":["app in (web, api),tier!=db"]}`,
			want:  []string{"alert", "exec_cat", "exec_psql", "exec_sh", "exit_cat", "flow_psql", "kprobe"},
		},
		{
			name:  "labels selectors are alternatives and need a pod",
			allow: `{"labels":["app=postgres","replicas>2"]}`,
			want:  []string{"alert", "exec_cat", "exec_postgres", "exec_psql", "exec_sh", "exit_cat", "flow_psql", "kprobe"},
		},
		{
			name:  "label absence",
			allow: `{"labels":["!replicas"]}`,
			want:  []string{"exec_postgres"},
		},
		{
			name:  "policy names on kprobes, flows and alerts",
			allow: `{"policy_names":["sensitive-files","web-to-db"]}`,
			want:  []string{"alert", "flow_psql", "kprobe"},
		},
		{
			name:  "parent binary",
			allow: `{"parent_binary_regex":["^/bin/sh$"]}`,
			want:  []string{"alert", "exec_cat", "exec_psql", "exit_cat", "flow_psql", "kprobe"},
		},
		{
			name:  "arguments",
			allow: `{"arguments_regex":["shadow"]}`,
			want:  []string{"alert", "exec_cat", "exit_cat", "kprobe"},
		},
		{
			name:  "container id without runtime prefix",
			allow: `{"container_id":["^aa11"]}`,
			want:  []string{"exec_postgres"},
		},
		{
			name:  "pod regex and pid",
			allow: `{"pod_regex":["^web-"],"pid":[1003]}`,
			want:  []string{"exec_psql", "flow_psql"},
		},
		{
			name:  "event set of flows and alerts",
			allow: `{"event_set":["FLOW","alert"]}`,
			want:  []string{"alert", "flow_psql"},
		},
		{
			name:  "namespace and container name regex",
			allow: `{"namespace_regex":["^d"],"container_name_regex":["^post"]}`,
			want:  []string{"exec_postgres"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			allow, err := Parse("--export-allowlist", tt.allow)
			if err != nil {
				t.Fatal(err)
			}
			deny, err := Parse("--export-denylist", tt.deny)
			if err != nil {
				t.Fatal(err)
			}
			set := &Set{Allow: allow, Deny: deny}
			var got []string
			for _, n := range names(evs) {
				// Twice: the second answer comes from the regex caches.
				first, second := set.Pass(evs[n]), set.Pass(evs[n])
				if first != second {
					t.Fatalf("%s: cached answer %v differs from first %v", n, second, first)
				}
				if first {
					got = append(got, n)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("passing events (-want +got):\n%s", diff)
			}
		})
	}
}

func names[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in      string
		wantErr string
		unsup   bool
	}{
		{`{"binary_rgx":["x"]}`, `--export-allowlist: line 1: binary_rgx: unknown filter key`, false},
		{"\n{\"namespace\":[\"a\"]}\n{\"health_check\":true}", `--export-allowlist: line 3: health_check: not supported`, true},
		{`{"cel_expression":["true"]}`, `line 1: cel_expression: not supported: CEL is not built in`, true},
		{`{"binary_regex":["ok","(unclosed"]}`, "line 1: binary_regex[1]: error parsing regexp: missing closing ): `(unclosed`", false},
		{`{"labels":["app in (web"]}`, `line 1: labels[0]: label selector "app in (web"`, false},
		{`{"event_set":["PROCESS_EXEC","PROCESS_FORK"]}`, `line 1: event_set[1]: unknown event type "PROCESS_FORK"`, false},
		{`{"namespace":"shop"}`, `line 1: namespace: want a list of strings`, false},
		{`{"pid":["1"]}`, `line 1: pid: want a list of process ids`, false},
		{`["namespace"]`, `line 1: not a JSON object`, false},
		{`{"namespace":["a"]} {"namespace":["b"]}`, `line 1: more than one JSON value`, false},
	}
	for _, tt := range tests {
		_, err := Parse("--export-allowlist", tt.in)
		if err == nil {
			t.Errorf("Parse(%q) succeeded, want error %q", tt.in, tt.wantErr)
			continue
		}
		if !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("Parse(%q) = %q, want it to contain %q", tt.in, err, tt.wantErr)
		}
		if errors.Is(err, ErrUnsupported) != tt.unsup {
			t.Errorf("Parse(%q): errors.Is(ErrUnsupported) = %v", tt.in, !tt.unsup)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(`{"namespace":["shop"],"binary_regex":["^/bin/(sh|bash)$"]}`)
	f.Add("{\"labels\":[\"a=b,c notin (d)\"]}\n{\"event_set\":[\"FLOW\"]}")
	f.Add(`{"pid":[1,2],"policy_names":[""]}`)
	evs := session()
	f.Fuzz(func(t *testing.T, text string) {
		l, err := Parse("fuzz", text)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz") {
				t.Fatalf("error does not name the source: %v", err)
			}
			return
		}
		for _, ev := range evs {
			l.Match(ev)
		}
	})
}
