package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"
	"github.com/google/go-cmp/cmp"
)

// runPolicyCLI runs `vigil ARGS...` in process and returns what it printed on
// stdout and the exit status run() would return.
func runPolicyCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	root := newRootCommand()
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs(args)
	err := root.Execute()
	code := 0
	if err != nil {
		code = 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
	}
	return stdout.String(), code
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const goodPolicy = `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: good
spec:
  kprobes:
  - call: fd_install
    syscall: false
    args:
    - index: 1
      type: file
`

func TestPolicyValidate(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", goodPolicy)
	bad := writeFile(t, dir, "bad.yaml", `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: bad
spec:
  kprobes:
  - call: fd_install
    syscall: false
    args:
    - index: 1
      type: fil
    selectors:
    - matchArgs:
      - index: 1
        operatr: Equal
`)
	warn := writeFile(t, dir, "warn.yaml", strings.Replace(goodPolicy, "name: good", "name: warn", 1)+"  lists: [{name: unused, values: [fd_install]}]\n")
	dup := writeFile(t, dir, "dup.yaml", goodPolicy)
	catchAll := writeFile(t, dir, "catch-all.yaml", `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: catch-all
spec:
  kprobes:
  - call: sys_execve
    args: [{index: 0, type: string}]
    selectors:
    - matchBinaries: [{operator: Prefix, values: ["/"]}]
      matchActions: [{action: Sigkill}]
`)
	catchAllPost := writeFile(t, dir, "catch-all-post.yaml", strings.Replace(goodPolicy, "name: good", "name: catch-all-post", 1)+`    selectors:
    - matchArgs: [{index: 1, operator: Postfix, values: [h]}]
`)
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	inSub := writeFile(t, sub, "in-sub.yml", strings.Replace(goodPolicy, "name: good", "name: in-sub", 1))
	writeFile(t, sub, "notes.txt", "not a policy")

	tests := []struct {
		name     string
		args     []string
		wantOut  []string
		wantCode int
	}{
		{"valid file", []string{good}, []string{good + ": 1 policy valid"}, 0},
		{"invalid file", []string{bad}, []string{
			bad + `:11: spec.kprobes[0].args[0].type: unknown type "fil" (did you mean "file"?)`,
			bad + `:15: spec.kprobes[0].selectors[0].matchArgs[0].operatr: unknown field "operatr" (did you mean "operator"?)`,
		}, 1},
		{"warnings do not fail", []string{warn}, []string{
			warn + `:12: spec.lists[0].name: warning: list "unused" is not used by any kprobe (call: "list:unused")`,
			warn + ": 1 policy valid",
		}, 0},
		{"one bad file fails the run", []string{good, bad, inSub}, []string{
			good + ": 1 policy valid",
			bad + `:11: spec.kprobes[0].args[0].type: unknown type "fil" (did you mean "file"?)`,
			bad + `:15: spec.kprobes[0].selectors[0].matchArgs[0].operatr: unknown field "operatr" (did you mean "operator"?)`,
			inSub + ": 1 policy valid",
		}, 1},
		{"catch-all filters do not restrict enforcement", []string{catchAll}, []string{
			catchAll + `:11: spec.kprobes[0].selectors[0].matchActions: REFUSED: Sigkill on sys_execve is restricted only by filters that match (nearly) everything (matchBinaries[0].values[0]: Prefix "/" matches every binary): every program started on the node would be denied or killed, including the ones needed to repair it. Restrict this selector with exact values (matchBinaries In, matchArgs Equal or a longer Prefix, matchPIDs In a few PIDs, matchNamespaces In an inode); or, if this is really what you want, add to spec.options: {name: allow-unrestricted-enforcement, value: "true"}`,
		}, 1},
		{"catch-all filters are warned about", []string{catchAllPost}, []string{
			catchAllPost + `:13: spec.kprobes[0].selectors[0].matchArgs[0].values[0]: warning: Postfix "h" matches every path ending in "h", a single character: this filter restricts (nearly) nothing`,
			catchAllPost + ": 1 policy valid",
		}, 0},
		{"directory", []string{sub}, []string{inSub + ": 1 policy valid"}, 0},
		{"same name in two files", []string{good, dup}, []string{
			good + ": 1 policy valid",
			dup + ": 1 policy valid",
			dup + `:4: metadata.name: TracingPolicy "good" is defined twice (first at ` + good + `:4)`,
		}, 1},
		{"missing file", []string{filepath.Join(dir, "nope.yaml")}, []string{filepath.Join(dir, "nope.yaml") + ": no such file or directory"}, 1},
		{"no files", nil, nil, 2},
		{"exclusive flags", []string{"--no-kernel", "--btf", "x", good}, nil, 2},
		{"unknown flag", []string{"--bogus", good}, nil, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code := runPolicyCLI(t, append([]string{"policy", "validate", "--no-kernel"}, tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("exit status %d, want %d (output %q)", code, tt.wantCode, out)
			}
			var got []string
			if out != "" {
				got = strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			}
			if diff := cmp.Diff(tt.wantOut, got); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPolicyValidateBTF validates against a kernel given as a BTF file.
func TestPolicyValidateBTF(t *testing.T) {
	uint := &btf.Int{Name: "unsigned int", Size: 4}
	b, err := btf.NewBuilder([]btf.Type{&btf.Func{Name: "fd_install", Linkage: btf.GlobalFunc, Type: &btf.FuncProto{
		Return: &btf.Void{},
		Params: []btf.FuncParam{{Name: "fd", Type: uint}, {Name: "file", Type: &btf.Pointer{Target: &btf.Struct{Name: "file"}}}},
	}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	vmlinux := filepath.Join(dir, "vmlinux.btf")
	if err := os.WriteFile(vmlinux, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	good := writeFile(t, dir, "good.yaml", goodPolicy)
	bad := writeFile(t, dir, "bad.yaml", strings.Replace(goodPolicy, "index: 1", "index: 0", 1))

	out, code := runPolicyCLI(t, "policy", "validate", "--btf", vmlinux, good, bad)
	want := good + ": 1 policy valid\n" +
		bad + `:11: spec.kprobes[0].args[0].type: "file" does not fit parameter 0 of fd_install (unsigned int fd): file needs a struct file *` + "\n"
	if code != 1 || out != want {
		t.Errorf("got status %d and\n%s\nwant status 1 and\n%s", code, out, want)
	}
	// A document with a schema problem still gets the kernel's checks: one
	// run lists everything to fix.
	both := writeFile(t, dir, "both.yaml", strings.Replace(strings.Replace(goodPolicy, "index: 1", "index: 0", 1), "    args:", "    argz: 1\n    args:", 1))
	out, code = runPolicyCLI(t, "policy", "validate", "--btf", vmlinux, both)
	want = both + `:9: spec.kprobes[0].argz: unknown field "argz" (did you mean "args"?)` + "\n" +
		both + `:12: spec.kprobes[0].args[0].type: "file" does not fit parameter 0 of fd_install (unsigned int fd): file needs a struct file *` + "\n"
	if code != 1 || out != want {
		t.Errorf("schema and kernel problems: got status %d and\n%s\nwant status 1 and\n%s", code, out, want)
	}
	if _, code := runPolicyCLI(t, "policy", "validate", "--btf", filepath.Join(dir, "missing"), good); code != 2 {
		t.Errorf("a missing --btf file: status %d, want 2", code)
	}
}

// TestPolicyValidateExamples checks the shipped examples with the command a
// user runs, against this machine's kernel when it has BTF.
func TestPolicyValidateExamples(t *testing.T) {
	args := []string{"policy", "validate", "../../examples/tracingpolicy"}
	if _, err := os.Stat(vmlinuxBTF); err != nil {
		args = append(args, "--no-kernel")
	}
	out, code := runPolicyCLI(t, args...)
	if code != 0 {
		t.Fatalf("status %d:\n%s", code, out)
	}
	if n := strings.Count(out, "policy valid\n"); n < 12 {
		t.Errorf("%d valid examples, want at least 12:\n%s", n, out)
	}
}

func TestFindTracefs(t *testing.T) {
	dir := t.TempDir()
	mi := writeFile(t, dir, "mountinfo", `22 1 0:21 / /sys rw,nosuid shared:7 - sysfs sysfs rw
40 22 0:35 / /sys/kernel/my\040tracing rw,nosuid shared:19 - tracefs tracefs rw
`)
	if got := findTracefs(mi); got != "/sys/kernel/my tracing" {
		t.Errorf("findTracefs = %q, want the tracefs mount point", got)
	}
}

// TestPolicyValidateStrict checks that validate reports every problem of a
// file at once, reads JSON files and Lists, and refuses input that reads
// differently from how it looks.
func TestPolicyValidateStrict(t *testing.T) {
	dir := t.TempDir()
	dupes := writeFile(t, dir, "dupes.yaml", `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: quiet
  name: loud
spec:
  options:
  - name: policy-mode
    value: monitor
  kprobes:
  - call: fd_install
    syscall: false
    args:
    - index: 1
      type: file
    selectors:
    - matchActions:
      - action: Post
        action: Sigkill
      matchBinaries:
      - operator: In
        values: [/bin/sh]
        bogus: yes
---
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: second
  labels: {on: x}
spec:
  kprobes:
  - call: fd_install
    syscall: false
    args:
    - index: 9
      type: file
`)
	jsonDir := filepath.Join(dir, "json")
	os.Mkdir(jsonDir, 0o755)
	jsonFile := writeFile(t, jsonDir, "p.json", `{"apiVersion": "cilium.io/v1alpha1", "kind": "TracingPolicy", "metadata": {"name": "from-json"},
 "spec": {"kprobes": [{"call": "fd_install", "syscall": false, "args": [{"index": 1, "type": "file"}]}]}}`)
	list := writeFile(t, dir, "list.yaml", `apiVersion: v1
kind: List
metadata:
  resourceVersion: ""
items:
- apiVersion: cilium.io/v1alpha1
  kind: TracingPolicy
  metadata:
    name: listed
    uid: 5f0c
    resourceVersion: "12"
    managedFields: [{manager: kubectl}]
  spec:
    kprobes:
    - call: fd_install
      syscall: false
      args: [{index: 1, type: file}]
  status: {}
- apiVersion: cilium.io/v1alpha1
  kind: TracingPolicy
  metadata: {name: broken}
  spec:
    kprobes:
    - call: fd_install
      syscal: false
`)
	empty := writeFile(t, dir, "empty.yaml", "\n")
	binary := writeFile(t, dir, "bin.yaml", "\x7fELF\x02\x01\x01\x00")

	tests := []struct {
		name     string
		args     []string
		wantOut  []string
		wantCode int
	}{
		{"every problem of every document", []string{dupes}, []string{
			dupes + ":5: metadata.name: duplicate key (first at line 4)",
			dupes + ":19: spec.kprobes[0].selectors[0].matchActions[0].action: duplicate key (first at line 18)",
			dupes + `:23: spec.kprobes[0].selectors[0].matchBinaries[0].bogus: unknown field "bogus"`,
			dupes + `:29: metadata.labels.on: on is the boolean true in YAML 1.1 (kubectl, the API server), not a string: quote it ("on")`,
			dupes + ":35: spec.kprobes[0].args[0].index: index 9 is out of range: arguments are read from the first 6 parameters (0 to 5)",
		}, 1},
		{"JSON files in a directory", []string{jsonDir}, []string{jsonFile + ": 1 policy valid"}, 0},
		{"a List of policies", []string{list}, []string{
			list + `:25: items[1].spec.kprobes[0].syscal: unknown field "syscal" (did you mean "syscall"?)`,
		}, 1},
		{"empty file", []string{empty}, []string{empty + ":1: the file is empty"}, 1},
		{"binary file", []string{binary}, []string{binary + ":1: control character 0x7f at column 1: this is not a YAML or JSON text file"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code := runPolicyCLI(t, append([]string{"policy", "validate", "--no-kernel"}, tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("exit status %d, want %d (output %q)", code, tt.wantCode, out)
			}
			var got []string
			if out != "" {
				got = strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			}
			if diff := cmp.Diff(tt.wantOut, got); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
	}
}

// A TracingPolicyNamespaced without metadata.namespace is valid with a
// warning (kubectl apply -n gives it one); --namespace gives it one here.
func TestPolicyValidateNamespace(t *testing.T) {
	dir := t.TempDir()
	f := writeFile(t, dir, "ns.yaml", strings.Replace(goodPolicy, "kind: TracingPolicy", "kind: TracingPolicyNamespaced", 1))
	out, code := runPolicyCLI(t, "policy", "validate", "--no-kernel", f)
	want := f + ":3: metadata.namespace: warning: missing: a TracingPolicyNamespaced applies to the pods of one namespace; it is taken from the cluster object (kubectl apply -n) or --namespace, and the policy cannot load without one\n" +
		f + ": 1 policy valid\n"
	if diff := cmp.Diff(want, out); diff != "" || code != 0 {
		t.Errorf("without --namespace: status %d, output (-want +got):\n%s", code, diff)
	}
	out, code = runPolicyCLI(t, "policy", "validate", "--no-kernel", "-n", "team-a", f)
	if diff := cmp.Diff(f+": 1 policy valid\n", out); diff != "" || code != 0 {
		t.Errorf("with -n: status %d, output (-want +got):\n%s", code, diff)
	}
	if _, code := runPolicyCLI(t, "policy", "validate", "--no-kernel", "--namespace", "Team_A", f); code != 2 {
		t.Errorf("--namespace Team_A: status %d, want 2 (usage)", code)
	}
}
