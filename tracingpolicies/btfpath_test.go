package tracingpolicies

import (
	"testing"

	"github.com/cilium/ebpf/btf"
	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/kprobes/abi"
)

// resolveKernel is a small BTF of the structures the resolve tests walk.
func resolveKernel(t *testing.T) *btf.Spec {
	t.Helper()
	intT := &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}
	charT := &btf.Int{Name: "char", Size: 1, Encoding: btf.Char}
	u16 := &btf.Int{Name: "short unsigned int", Size: 2}
	task := &btf.Struct{Name: "task_struct", Size: 64}
	mm := &btf.Struct{Name: "mm_struct", Size: 8, Members: []btf.Member{{Name: "owner", Type: &btf.Pointer{Target: task}, Offset: 0}}}
	file := &btf.Struct{Name: "file", Size: 8}
	path := &btf.Struct{Name: "path", Size: 16}
	task.Members = []btf.Member{
		{Name: "flags", Type: intT, Offset: 0, BitfieldSize: 3},
		{Name: "tgid", Type: intT, Offset: 8 * 8},
		{Name: "real_parent", Type: &btf.Pointer{Target: task}, Offset: 16 * 8},
		{Name: "comm", Type: &btf.Array{Index: intT, Type: charT, Nelems: 16}, Offset: 24 * 8},
		{Name: "mm", Type: &btf.Pointer{Target: mm}, Offset: 40 * 8},
		// An anonymous union, as the kernel has them.
		{Name: "", Type: &btf.Union{Size: 8, Members: []btf.Member{{Name: "ids", Type: &btf.Array{Index: intT, Type: u16, Nelems: 4}}}}, Offset: 48 * 8},
	}
	binprm := &btf.Struct{Name: "linux_binprm", Size: 40, Members: []btf.Member{
		{Name: "mm", Type: &btf.Pointer{Target: mm}, Offset: 0},
		{Name: "file", Type: &btf.Pointer{Target: file}, Offset: 8 * 8},
		{Name: "filename", Type: &btf.Pointer{Target: &btf.Const{Type: charT}}, Offset: 16 * 8},
		{Name: "f_path", Type: path, Offset: 24 * 8},
	}}
	fn := &btf.Func{Name: "bpf_lsm_bprm_check_security", Linkage: btf.GlobalFunc, Type: &btf.FuncProto{Return: intT,
		Params: []btf.FuncParam{{Name: "bprm", Type: &btf.Pointer{Target: binprm}}, {Name: "n", Type: intT}}}}
	b, err := btf.NewBuilder([]btf.Type{fn, task, binprm}, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := b.Spec()
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// resolve paths compile to the offsets of the kernel's structures; what
// cannot be followed is refused at its line with the reason.
func TestValidateResolve(t *testing.T) {
	spec := resolveKernel(t)
	src := header + `  lsmhooks:
  - hook: bprm_check_security
    args:
    - {index: 0, type: string, resolve: mm.owner.real_parent.comm}
    - {index: 0, type: int, resolve: mm.owner.tgid}
    - {index: 0, type: file, resolve: file}
    - {index: 0, type: path, resolve: f_path}
  - hook: bprm_check_security
    args:
    - {index: 0, type: uint16, resolve: "mm.owner.ids[2]"}
    - {index: 0, type: string, btfType: linux_binprm, resolve: filename}
`
	ps, err := Parse("p.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Validate(ps[0], spec, nil); err != nil {
		t.Fatal(err)
	}
	var got [][]ResolveStep
	for _, h := range ps[0].Hooks {
		for _, a := range h.Args {
			got = append(got, a.Steps)
		}
	}
	want := [][]ResolveStep{
		{{Offset: 0, Size: 8}, {Offset: 0, Size: 8}, {Offset: 16, Size: 8}, {Offset: 24}},
		{{Offset: 0, Size: 8}, {Offset: 0, Size: 8}, {Offset: 8, Size: 4}},
		{{Offset: 8, Size: 8}},
		{{Offset: 24}},
		{{Offset: 0, Size: 8}, {Offset: 0, Size: 8}, {Offset: 48 + 4, Size: 2}},
		{{Offset: 16, Size: 8}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}

	bad := header + `  lsmhooks:
  - hook: bprm_check_security
    args:
    - {index: 0, type: string, resolve: mm.owner.real_parnt.comm}
    - {index: 0, type: int, resolve: mm.owner.comm}
    - {index: 0, type: string, resolve: mm.owner.flags}
    - {index: 0, type: int, resolve: "mm.owner.comm[16]"}
    - {index: 1, type: int, resolve: tgid}
    - {index: 0, type: string, btfType: no_such_struct, resolve: x}
  - hook: bprm_check_security
    args:
    - {index: 0, type: file, resolve: mm.owner.tgid.x}
`
	ps, err = Parse("p.yaml", []byte(bad))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Validate(ps[0], spec, nil)
	if diff := cmp.Diff([]string{
		`p.yaml:9: spec.lsmhooks[0].args[0].resolve: "mm.owner.real_parnt.comm" from struct linux_binprm *bprm: struct task_struct has no field "real_parnt" (did you mean "real_parent"?)`,
		`p.yaml:10: spec.lsmhooks[0].args[1].type: "int32" does not fit parameter 0 of bprm_check_security (char mm.owner.comm[16]): int32 needs an integer`,
		`p.yaml:11: spec.lsmhooks[0].args[2].resolve: "mm.owner.flags" from struct linux_binprm *bprm: struct task_struct.flags is a bit field, which cannot be read`,
		`p.yaml:12: spec.lsmhooks[0].args[3].resolve: "mm.owner.comm[16]" from struct linux_binprm *bprm: comm[16]: comm has 16 elements`,
		`p.yaml:13: spec.lsmhooks[0].args[4].resolve: "tgid" from int n: the parameter is int, not a pointer to a structure (btfType casts a pointer to one)`,
		`p.yaml:14: spec.lsmhooks[0].args[5].btfType: "x" from struct linux_binprm *bprm: btfType "no_such_struct": the kernel's BTF has no struct or union of that name (write it without "struct ")`,
		`p.yaml:17: spec.lsmhooks[1].args[0].resolve: "mm.owner.tgid.x" from struct linux_binprm *bprm: tgid is int, which has no field "x"`,
	}, errLines(err)); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

// resolve is refused where it cannot read kernel structures, before any
// kernel is known.
func TestParseResolvePlaces(t *testing.T) {
	src := header + `  kprobes:
  - call: sys_openat
    args: [{index: 1, type: string, resolve: name}]
  tracepoints:
  - subsystem: sched
    event: sched_process_exec
    args: [{index: 4, type: string, resolve: comm}]
  lsmhooks:
  - hook: file_open
    args:
    - {index: 0, type: file, btfType: file}
    - {index: 0, type: int, resolve: "f_flags..x"}
`
	_, err := Parse("p.yaml", []byte(src))
	if diff := cmp.Diff([]string{
		`p.yaml:8: spec.kprobes[0].args[0].resolve: resolve reads kernel structures through BTF, and a syscall's arguments are integers and pointers to user memory; hook a kernel function, an LSM hook or a raw tracepoint`,
		`p.yaml:12: spec.tracepoints[0].args[0].resolve: resolve reads a tracepoint's arguments through BTF: set raw: true (the arguments are then the tracepoint's own, not its format fields)`,
		`p.yaml:16: spec.lsmhooks[0].args[0].btfType: btfType casts the parameter for resolve; give the path of fields to read in resolve`,
		`p.yaml:17: spec.lsmhooks[0].args[1].resolve: "f_flags..x": "" is not a field name or an indexed field such as name[3]`,
	}, errLines(err)); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

// The compiled hook carries each resolve path for the loader, and the
// argument is flagged for the kernel to follow it; a policy not validated
// against a kernel cannot be compiled with one.
func TestCompileResolve(t *testing.T) {
	src := header + `  lsmhooks:
  - hook: bprm_check_security
    args:
    - {index: 1, type: int}
    - {index: 0, type: int, resolve: mm.owner.tgid}
`
	ps, err := Parse("p.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Compile(ps[0], 1, &seqIDs{}, nil); err == nil || errLines(err)[0] != `p.yaml:10: spec.lsmhooks[0].args[1].resolve: resolve "mm.owner.tgid" is found in the kernel's BTF when the policy is validated against it, and it was not` {
		t.Errorf("compile before validate: %v", err)
	}
	// Validated again (against another kernel, whose offsets were these),
	// the paths are compiled afresh, not compared with the last ones.
	ps[0].Hooks[0].Args[1].Steps = []ResolveStep{{Offset: 99, Size: 8}}
	if _, err := Validate(ps[0], resolveKernel(t), nil); err != nil {
		t.Fatal(err)
	}
	c, err := Compile(ps[0], 1, &seqIDs{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := c.Hooks[0]
	r, ok := h.Resolves[1]
	if len(h.Resolves) != 1 || !ok || r.N != 3 || r.Steps[2].Off != 8 || r.Steps[2].Size != 4 {
		t.Errorf("resolves %+v, want argument 1's three steps", h.Resolves)
	}
	const flag = uint8(abi.GenericGenArgFlagsGEN_ARGF_RESOLVE)
	if h.Configs[0].Args[1].Flags&flag == 0 || h.Configs[0].Args[0].Flags&flag != 0 {
		t.Errorf("arg flags %#x %#x, want the resolve flag on argument 1 only", h.Configs[0].Args[0].Flags, h.Configs[0].Args[1].Flags)
	}
}
