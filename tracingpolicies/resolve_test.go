package tracingpolicies

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestParseResolvesHooks(t *testing.T) {
	src := `# a Tetragon policy, with Tetragon's spellings
apiVersion: cilium.io/v1alpha1
kind: TracingPolicyNamespaced
metadata:
  name: resolve
  namespace: shop
spec:
  options:
  - {name: policy-mode, value: monitor}
  podSelector:
    matchLabels: {app: cart}
    matchExpressions: [{key: "k8s:io.kubernetes.pod.namespace", operator: NotIn, values: [kube-system]}]
  containerSelector:
    matchExpressions: [{key: name, operator: In, values: [server]}]
  lists:
  - name: dups
    type: syscalls
    values: [sys_dup, __x64_sys_dup2]
  kprobes:
  - call: "list:dups"
    args: [{index: 0, type: sint32, label: fd}]
    selectors:
    - matchArgs: [{index: 0, operator: gt, values: ["-1", "0x10"]}]
      matchPIDs: [{operator: NotIn, values: [0, 1], followForks: true, isNamespacePID: true}]
  - call: tcp_connect
    syscall: false
    message: connect
    tags: [network]
    return: true
    returnArg: {type: int}
    args: [{index: 0, type: sock}]
    selectors:
    - matchArgs:
      - {index: 0, operator: DAddr, values: [10.0.0.0/8, "::ffff:192.168.1.1", "fd00::1"]}
      - {args: [0], operator: dport, values: ["443", "8000:8999"]}
      - {index: 0, operator: Protocol, values: [IPPROTO_TCP, "17"]}
      matchReturnArgs: [{operator: NotEqual, values: ["0"]}]
      matchBinaries: [{operator: In, values: [/bin/sh], followChildren: true}]
      matchActions: [{action: Post, rateLimit: 5m}]
  tracepoints:
  - subsystem: raw_syscalls
    event: sys_enter
    args: [{index: 4, type: long}]
    selectors:
    - matchNamespaces: [{namespace: Mnt, operator: NotIn, values: [host_ns, "4026531840"]}]
      matchCapabilities: [{operator: In, values: [CAP_SYS_ADMIN, CAP_BPF]}, {type: Permitted, operator: NotIn, isNamespaceCapability: true, values: [CAP_CHOWN]}]
  lsmhooks:
  - hook: file_open
    args: [{index: 0, type: file}]
    selectors:
    - matchArgs: [{index: 0, operator: Equal, values: ["/etc/shadow\0"]}]
      matchActions: [{action: override, argError: -13}, {action: Signal, argSig: SIGTERM}, {action: NoPost}]
`
	policies, err := Parse("r.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(policies) != 1 {
		t.Fatalf("got %d policies, want 1", len(policies))
	}
	p := policies[0]
	if p.Name != "resolve" || p.Namespace != "shop" || p.Kind != KindTracingPolicyNamespaced || p.Mode != ModeMonitor {
		t.Errorf("got name %q namespace %q kind %q mode %q", p.Name, p.Namespace, p.Kind, p.Mode)
	}
	if got := p.PodSelector.String(); got != "app=cart,io.kubernetes.pod.namespace notin (kube-system)" {
		t.Errorf("pod selector = %q", got)
	}
	if got := p.ContainerSelector.String(); got != "name in (server)" {
		t.Errorf("container selector = %q", got)
	}
	if !p.Enforces() {
		t.Error("Enforces() = false for a policy with Override")
	}
	minus1 := uint64(0xffffffffffffffff)
	want := []*Hook{
		{
			Kind: HookSyscall, Path: "spec.kprobes[0]", Functions: []string{"dup", "dup2"},
			Args: []Arg{{Index: 0, Type: TypeInt32, Label: "fd"}},
			Selectors: []Selector{{
				Path:      "spec.kprobes[0].selectors[0]",
				MatchArgs: []ArgFilter{{Index: 0, Arg: 0, Type: TypeInt32, Op: OpGT, Values: []string{"-1", "0x10"}, Ints: []uint64{minus1, 16}}},
				MatchPIDs: []PIDFilter{{Op: OpNotIn, PIDs: []uint32{0, 1}, FollowForks: true, IsNamespacePID: true}},
				Actions:   []Action{{Kind: ActionPost}},
			}},
		},
		{
			Kind: HookKprobe, Path: "spec.kprobes[1]", Functions: []string{"tcp_connect"},
			Message: "connect", Tags: []string{"network"}, Return: true,
			ReturnArg: &Arg{Type: TypeInt32},
			Args:      []Arg{{Index: 0, Type: TypeSock}},
			Selectors: []Selector{{
				Path: "spec.kprobes[1].selectors[0]",
				MatchArgs: []ArgFilter{
					{Index: 0, Arg: 0, Type: TypeSock, Op: OpDAddr, Values: []string{"10.0.0.0/8", "::ffff:192.168.1.1", "fd00::1"},
						Prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.1/32"), netip.MustParsePrefix("fd00::1/128")}},
					{Index: 0, Arg: 0, Type: TypeSock, Op: OpDPort, Values: []string{"443", "8000:8999"}, Ports: []PortRange{{443, 443}, {8000, 8999}}},
					{Index: 0, Arg: 0, Type: TypeSock, Op: OpProtocol, Values: []string{"IPPROTO_TCP", "17"}, Ints: []uint64{6, 17}},
				},
				MatchReturnArgs: []ArgFilter{{Arg: -1, Type: TypeInt32, Op: OpNotEqual, Values: []string{"0"}, Ints: []uint64{0}}},
				MatchBinaries:   []BinaryFilter{{Op: BinIn, Paths: []string{"/bin/sh"}, FollowChildren: true}},
				Actions:         []Action{{Kind: ActionPost, RateLimit: 5 * time.Minute}},
			}},
		},
		{
			Kind: HookTracepoint, Path: "spec.tracepoints[0]", Subsystem: "raw_syscalls", Event: "sys_enter",
			Args: []Arg{{Index: 4, Type: TypeInt64}},
			Selectors: []Selector{{
				Path:            "spec.tracepoints[0].selectors[0]",
				MatchNamespaces: []NamespaceFilter{{Namespace: NSMnt, Op: OpNotIn, Inodes: []uint32{4026531840}, HostNS: true}},
				MatchCapabilities: []CapabilityFilter{
					{Set: CapEffective, Op: OpIn, Mask: 1<<21 | 1<<39},
					{Set: CapPermitted, Op: OpNotIn, IsNamespaceCapability: true, Mask: 1},
				},
				Actions: []Action{{Kind: ActionPost}},
			}},
		},
		{
			Kind: HookLSM, Path: "spec.lsmhooks[0]", Functions: []string{"file_open"},
			Args: []Arg{{Index: 0, Type: TypeFile}},
			Selectors: []Selector{{
				Path:      "spec.lsmhooks[0].selectors[0]",
				MatchArgs: []ArgFilter{{Index: 0, Arg: 0, Type: TypeFile, Op: OpEqual, Values: []string{"/etc/shadow"}}},
				Actions:   []Action{{Kind: ActionOverride, Error: -13}, {Kind: ActionSignal, Signal: 15}, {Kind: ActionNoPost}},
			}},
		},
	}
	if diff := cmp.Diff(want, p.Hooks, cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
		t.Errorf("hooks (-want +got):\n%s", diff)
	}
	if len(p.Warnings) != 0 {
		t.Errorf("unexpected warnings: %v", p.Warnings)
	}
}

func TestParseWarnings(t *testing.T) {
	src := header + `  options:
  - {name: allow-unrestricted-enforcement, value: "true"}
  lists:
  - {name: unused, values: [fd_install]}
  kprobes:
  - call: sys_openat
    syscall: false
  - call: do_sys_openat2
    syscall: false
    selectors:
    - matchPIDs: [{operator: In, values: [42]}]
      matchActions: [{action: Override, argError: -1}]
  lsmhooks:
  - hook: bprm_check_security
    selectors:
    - matchActions: [{action: Sigkill}]
`
	policies, err := Parse("w.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range policies[0].Warnings {
		got = append(got, w.Error())
	}
	want := []string{
		`w.yaml:12: spec.kprobes[0].syscall: "sys_openat" looks like a syscall but syscall is false: its arguments will be read as the function's own (a struct pt_regs *); set syscall: true to read the syscall's arguments`,
		`w.yaml:17: spec.kprobes[1].selectors[0].matchActions[0].action: Override on do_sys_openat2 works only if the kernel marks it error-injectable (ALLOW_ERROR_INJECTION); prefer an LSM hook or a security_ function`,
		`w.yaml:9: spec.lists[0].name: list "unused" is not used by any kprobe (call: "list:unused")`,
		`w.yaml:21: spec.lsmhooks[0].selectors[0].matchActions: allow-unrestricted-enforcement is set: Sigkill on bprm_check_security is not restricted by any filter, so every program started on the node would be denied or killed, including the ones needed to repair it`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

func TestOptInWithoutEffect(t *testing.T) {
	src := header + `  options:
  - {name: allow-unrestricted-enforcement, value: "true"}
  lsmhooks:
  - hook: file_open
    selectors:
    - matchActions: [{action: Override, argError: -1}]
`
	policies, err := Parse("o.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range policies[0].Warnings {
		got = append(got, w.Error())
	}
	want := []string{`o.yaml:7: spec.options[0]: allow-unrestricted-enforcement has no effect: no selector of this policy needs it; remove it`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

func TestParsePath(t *testing.T) {
	policies, err := ParsePath(examplesDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(policies) < 12 {
		t.Errorf("ParsePath(%s) = %d policies, want every example", examplesDir, len(policies))
	}
	dir := t.TempDir()
	doc := header + "  lsmhooks: [{hook: file_open}]\n"
	for _, name := range []string{"a.yaml", "b.yml"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	policies, err = ParsePath(dir)
	want := []string{filepath.Join(dir, "b.yml") + `:4: metadata.name: TracingPolicy "t" is defined twice (first at ` + filepath.Join(dir, "a.yaml") + ":4)"}
	if diff := cmp.Diff(want, errLines(err)); diff != "" || len(policies) != 2 {
		t.Errorf("%d policies; errors (-want +got):\n%s", len(policies), diff)
	}
	if _, err := ParsePath(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing path must be an error")
	}
}

func TestParseMultiDocumentKeepsValidPolicies(t *testing.T) {
	src := header + "  lsmhooks: [{hook: file_open}]\n---\n" + header + "  lsmhooks: [{hook: Bad-Hook}]\n---\n# only a comment\n---\n" +
		"apiVersion: vigil.dev/v1alpha1\nkind: TracingPolicy\nmetadata: {name: other}\nspec:\n  tracepoints: [{subsystem: sched, event: sched_process_exec}]\n"
	policies, err := Parse("m.yaml", []byte(src))
	if diff := cmp.Diff([]string{`m.yaml:13: spec.lsmhooks[0].hook: "Bad-Hook" is not an LSM hook name`}, errLines(err)); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
	var names []string
	for _, p := range policies {
		names = append(names, p.Name)
		if p.Doc.LineOf("spec") == 0 {
			t.Errorf("policy %s lost its document", p.Name)
		}
	}
	if diff := cmp.Diff([]string{"t", "other"}, names); diff != "" {
		t.Errorf("valid policies (-want +got):\n%s", diff)
	}
	if _, err := Parse("empty.yaml", []byte("# nothing\n")); err == nil {
		t.Error("a file without documents must be an error")
	}
}
