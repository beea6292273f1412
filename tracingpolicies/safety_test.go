package tracingpolicies

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Filters that match (nearly) everything are warned about wherever they
// are, and do not make enforcement on a hook every process passes through
// acceptable; with allow-unrestricted-enforcement it is loaded with a
// warning.
func TestCatchAllFilters(t *testing.T) {
	execve := func(sel string) string {
		return header + `  kprobes:
  - call: sys_execve
    args: [{index: 0, type: string}]
    selectors:
` + sel + `      matchActions: [{action: Sigkill}]
`
	}
	pids := make([]string, broadPIDSet)
	for i := range pids {
		pids[i] = fmt.Sprint(1000 + i)
	}
	const refusalTail = `: every program started on the node would be denied or killed, including the ones needed to repair it. Restrict this selector with exact values (matchBinaries In, matchArgs Equal or a longer Prefix, matchPIDs In a few PIDs, matchNamespaces In an inode); or, if this is really what you want, add to spec.options: {name: allow-unrestricted-enforcement, value: "true"}`
	refused := func(line int, why string) string {
		return fmt.Sprintf("p.yaml:%d: spec.kprobes[0].selectors[0].matchActions: REFUSED: Sigkill on sys_execve is restricted only by filters that match (nearly) everything (%s)%s", line, why, refusalTail)
	}
	tests := []struct {
		name     string
		src      string
		errs     []string
		warnings []string
	}{
		{"binary prefix /", execve("    - matchBinaries: [{operator: Prefix, values: [/opt/app/, /]}]\n"),
			[]string{refused(11, `matchBinaries[0].values[1]: Prefix "/" matches every binary`)},
			[]string{`p.yaml:10: spec.kprobes[0].selectors[0].matchBinaries[0].values[1]: Prefix "/" matches every binary: this filter restricts (nearly) nothing`}},
		{"binary prefix covering /usr/bin/", execve("    - matchBinaries: [{operator: Prefix, values: [/usr]}]\n"),
			[]string{refused(11, `matchBinaries[0].values[0]: Prefix "/usr" matches every program under /usr/bin/`)},
			[]string{`p.yaml:10: spec.kprobes[0].selectors[0].matchBinaries[0].values[0]: Prefix "/usr" matches every program under /usr/bin/: this filter restricts (nearly) nothing`}},
		{"binary postfix of one character", execve("    - matchBinaries: [{operator: Postfix, values: [h]}]\n"),
			[]string{refused(11, `matchBinaries[0].values[0]: Postfix "h" matches every path ending in "h", a single character`)},
			[]string{`p.yaml:10: spec.kprobes[0].selectors[0].matchBinaries[0].values[0]: Postfix "h" matches every path ending in "h", a single character: this filter restricts (nearly) nothing`}},
		{"program path prefix covering /bin/", execve("    - matchArgs: [{index: 0, operator: Prefix, values: [/bin/]}]\n"),
			[]string{refused(11, `matchArgs[0].values[0]: Prefix "/bin/" matches every program under /bin/`)},
			[]string{`p.yaml:10: spec.kprobes[0].selectors[0].matchArgs[0].values[0]: Prefix "/bin/" matches every program under /bin/: this filter restricts (nearly) nothing`}},
		{"argument prefix /", execve("    - matchArgs: [{index: 0, operator: Prefix, values: [/]}]\n"),
			[]string{refused(11, `matchArgs[0].values[0]: Prefix "/" matches every absolute path`)},
			[]string{`p.yaml:10: spec.kprobes[0].selectors[0].matchArgs[0].values[0]: Prefix "/" matches every absolute path: this filter restricts (nearly) nothing`}},
		{"argument postfix of one character", execve("    - matchArgs: [{index: 0, operator: Postfix, values: [/usr/bin/bash, h]}]\n"),
			[]string{refused(11, `matchArgs[0].values[1]: Postfix "h" matches every path ending in "h", a single character`)},
			[]string{`p.yaml:10: spec.kprobes[0].selectors[0].matchArgs[0].values[1]: Postfix "h" matches every path ending in "h", a single character: this filter restricts (nearly) nothing`}},
		{"namespace PID 1", execve("    - matchPIDs: [{operator: In, isNamespacePID: true, values: [1]}]\n"),
			[]string{refused(11, `matchPIDs[0].values[0]: isNamespacePID In 1 matches the first process of every PID namespace: the host's init and every container's entry point`)},
			[]string{`p.yaml:10: spec.kprobes[0].selectors[0].matchPIDs[0].values[0]: isNamespacePID In 1 matches the first process of every PID namespace: the host's init and every container's entry point: this filter restricts (nearly) nothing`}},
		{"a large PID set", execve("    - matchPIDs: [{operator: In, values: [" + strings.Join(pids, ", ") + "]}]\n"),
			[]string{refused(11, `matchPIDs[0].values: 32 PIDs are no hand-picked list of processes: PIDs are reused, so such a set matches whatever runs under them`)},
			[]string{`p.yaml:10: spec.kprobes[0].selectors[0].matchPIDs[0].values: 32 PIDs are no hand-picked list of processes: PIDs are reused, so such a set matches whatever runs under them: this filter restricts (nearly) nothing`}},
		{"several catch-alls", execve("    - matchBinaries: [{operator: Prefix, values: [/]}]\n      matchArgs: [{index: 0, operator: Prefix, values: [/]}]\n"),
			[]string{refused(12, `matchArgs[0].values[0]: Prefix "/" matches every absolute path; matchBinaries[0].values[0]: Prefix "/" matches every binary`)},
			[]string{
				`p.yaml:11: spec.kprobes[0].selectors[0].matchArgs[0].values[0]: Prefix "/" matches every absolute path: this filter restricts (nearly) nothing`,
				`p.yaml:10: spec.kprobes[0].selectors[0].matchBinaries[0].values[0]: Prefix "/" matches every binary: this filter restricts (nearly) nothing`,
			}},
		{"a catch-all beside a real restriction", execve("    - matchBinaries: [{operator: Prefix, values: [/]}]\n      matchArgs: [{index: 0, operator: Prefix, values: [/tmp/]}]\n"),
			nil,
			[]string{`p.yaml:10: spec.kprobes[0].selectors[0].matchBinaries[0].values[0]: Prefix "/" matches every binary: this filter restricts (nearly) nothing`}},
		{"opt-in", strings.Replace(execve("    - matchBinaries: [{operator: Postfix, values: [h]}]\n"), "spec:\n", "spec:\n  options: [{name: allow-unrestricted-enforcement, value: \"true\"}]\n", 1),
			nil,
			[]string{
				`p.yaml:11: spec.kprobes[0].selectors[0].matchBinaries[0].values[0]: Postfix "h" matches every path ending in "h", a single character: this filter restricts (nearly) nothing`,
				`p.yaml:12: spec.kprobes[0].selectors[0].matchActions: allow-unrestricted-enforcement is set: Sigkill on sys_execve is restricted only by filters that match (nearly) everything (matchBinaries[0].values[0]: Postfix "h" matches every path ending in "h", a single character), so every program started on the node would be denied or killed, including the ones needed to repair it`,
			}},
		{"warned on any hook, refused on none other", header + `  kprobes:
  - call: tcp_connect
    syscall: false
    args: [{index: 0, type: sock}]
    selectors:
    - matchArgs:
      - {index: 0, operator: DPort, values: ["0:1023", "1024:65535"]}
      - {index: 0, operator: DAddr, values: [10.0.0.0/8, 0.0.0.0/0]}
      matchActions: [{action: Sigkill}]
  lsmhooks:
  - hook: file_open
    args: [{index: 0, type: file}]
    selectors:
    - matchArgs: [{index: 0, operator: Prefix, values: [/]}]
`, nil, []string{
			`p.yaml:12: spec.kprobes[0].selectors[0].matchArgs[0].values: DPort 0:1023, 1024:65535 covers every port: this filter restricts (nearly) nothing`,
			`p.yaml:13: spec.kprobes[0].selectors[0].matchArgs[1].values[1]: DAddr "0.0.0.0/0" matches every address: this filter restricts (nearly) nothing`,
			`p.yaml:19: spec.lsmhooks[0].selectors[0].matchArgs[0].values[0]: Prefix "/" matches every absolute path: this filter restricts (nearly) nothing`,
		}},
		{"narrow filters", execve(`    - matchBinaries: [{operator: Prefix, values: [/usr/bin/c]}]
    - matchBinaries: [{operator: Postfix, values: [/sh]}]
    - matchArgs: [{index: 0, operator: Prefix, values: [/usr/bin/c]}]
    - matchPIDs: [{operator: In, isNamespacePID: true, values: [2, 3]}]
    - matchPIDs: [{operator: In, values: [1, 1234]}]
`), nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, err := Parse("p.yaml", []byte(tt.src))
			if diff := cmp.Diff(tt.errs, errLines(err)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if err != nil {
				return
			}
			var warns []string
			for _, w := range ps[0].Warnings {
				warns = append(warns, w.Error())
			}
			if diff := cmp.Diff(tt.warnings, warns); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

// allow-protected-enforcement on a policy whose enforcing selectors name no
// process exactly can change nothing, and says so.
func TestProtectedOptInWithoutEffect(t *testing.T) {
	src := func(sel string) string {
		return header + `  options: [{name: allow-protected-enforcement, value: "true"}]
  kprobes:
  - call: sys_ptrace
    selectors:
    - ` + sel + `
      matchActions: [{action: Sigkill}]
`
	}
	for _, tt := range []struct {
		sel  string
		want []string
	}{
		{`matchBinaries: [{operator: In, values: [/usr/bin/containerd]}]`, nil},
		{`matchPIDs: [{operator: In, values: [1]}]`, nil},
		{`matchBinaries: [{operator: Prefix, values: [/usr/bin/containerd]}]`, []string{
			`p.yaml:6: spec.options[0]: allow-protected-enforcement has no effect: no enforcing selector names its processes exactly (matchBinaries In without followChildren, or matchPIDs In host PIDs without followForks)`,
		}},
		{`matchPIDs: [{operator: In, isNamespacePID: true, values: [2]}]`, []string{
			`p.yaml:6: spec.options[0]: allow-protected-enforcement has no effect: no enforcing selector names its processes exactly (matchBinaries In without followChildren, or matchPIDs In host PIDs without followForks)`,
		}},
	} {
		ps, err := Parse("p.yaml", []byte(src(tt.sel)))
		if err != nil {
			t.Fatalf("%s: %v", tt.sel, err)
		}
		var got []string
		for _, w := range ps[0].Warnings {
			got = append(got, w.Error())
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: warnings (-want +got):\n%s", tt.sel, diff)
		}
	}
}
