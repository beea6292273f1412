package tracingpolicies

import (
	"testing"
	"testing/fstest"

	"github.com/cilium/ebpf/btf"
	"github.com/google/go-cmp/cmp"
)

// testKernel builds a small kernel BTF with the functions, LSM hooks and
// tracepoints the tests below use.
func testKernel(t testing.TB) *btf.Spec {
	t.Helper()
	var (
		intT    = &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}
		uintT   = &btf.Int{Name: "unsigned int", Size: 4}
		longT   = &btf.Int{Name: "long int", Size: 8, Encoding: btf.Signed}
		ushortT = &btf.Int{Name: "short unsigned int", Size: 2}
		ucharT  = &btf.Int{Name: "unsigned char", Size: 1}
		charT   = &btf.Int{Name: "char", Size: 1, Encoding: btf.Char}
		boolT   = &btf.Typedef{Name: "bool", Type: &btf.Int{Name: "_Bool", Size: 1, Encoding: btf.Bool}}
		umodeT  = &btf.Typedef{Name: "umode_t", Type: ushortT}
		u32T    = &btf.Typedef{Name: "u32", Type: uintT}
		file    = &btf.Struct{Name: "file", Size: 8}
		path    = &btf.Struct{Name: "path", Size: 16}
		dentry  = &btf.Struct{Name: "dentry", Size: 8}
		task    = &btf.Struct{Name: "task_struct", Size: 8}
		cred    = &btf.Struct{Name: "cred", Size: 8}
		ptRegs  = &btf.Struct{Name: "pt_regs", Size: 8}
		readID  = &btf.Enum{Name: "kernel_read_file_id", Size: 4, Values: []btf.EnumValue{{Name: "READING_MODULE", Value: 2}}}
		ptr     = func(t btf.Type) btf.Type { return &btf.Pointer{Target: t} }
		param   = func(name string, t btf.Type) btf.FuncParam { return btf.FuncParam{Name: name, Type: t} }
		fn      = func(name string, ret btf.Type, params ...btf.FuncParam) *btf.Func {
			return &btf.Func{Name: name, Linkage: btf.GlobalFunc, Type: &btf.FuncProto{Return: ret, Params: params}}
		}
		sysFn = func(name string) *btf.Func {
			return fn(syscallSymbolPrefix()+name, longT, param("regs", ptr(&btf.Const{Type: ptRegs})))
		}
		traceEntry = &btf.Struct{Name: "trace_entry", Size: 8, Members: []btf.Member{
			{Name: "type", Type: ushortT}, {Name: "flags", Type: ucharT, Offset: 16},
			{Name: "preempt_count", Type: ucharT, Offset: 24}, {Name: "pid", Type: intT, Offset: 32},
		}}
		rawExec = &btf.Struct{Name: "trace_event_raw_sched_process_exec", Size: 24, Members: []btf.Member{
			{Name: "ent", Type: traceEntry}, {Name: "__data_loc_filename", Type: u32T, Offset: 64},
			{Name: "pid", Type: intT, Offset: 96}, {Name: "old_pid", Type: intT, Offset: 128},
			{Name: "__data", Type: &btf.Array{Index: intT, Type: charT, Nelems: 0}, Offset: 160},
		}}
		tpProto = ptr(&btf.FuncProto{Return: &btf.Void{}, Params: []btf.FuncParam{param("", ptr(&btf.Void{}))}})
	)
	types := []btf.Type{
		fn("fd_install", &btf.Void{}, param("fd", uintT), param("file", ptr(file))),
		fn("security_file_open", intT, param("file", ptr(file))),
		fn("security_kernel_read_file", intT, param("file", ptr(file)), param("id", readID), param("contents", boolT)),
		fn("cap_capable", intT, param("cred", ptr(&btf.Const{Type: cred})), param("ns", ptr(&btf.Struct{Name: "user_namespace"})), param("cap", intT), param("opts", uintT)),
		fn("strncpy_from_user", longT, param("dst", ptr(charT)), param("src", ptr(&btf.Const{Type: charT})), param("count", longT)),
		fn("bpf_lsm_file_open", intT, param("file", ptr(file))),
		fn("bpf_lsm_task_free", &btf.Void{}, param("task", ptr(task))),
		fn("bpf_lsm_path_mkdir", intT, param("dir", ptr(&btf.Const{Type: path})), param("dentry", ptr(dentry)), param("mode", umodeT)),
		sysFn("openat"), sysFn("write"),
		&btf.Typedef{Name: "btf_trace_sched_process_exec", Type: tpProto},
		&btf.Typedef{Name: "btf_trace_sched_switch", Type: tpProto},
		rawExec,
	}
	b, err := btf.NewBuilder(types, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := b.Spec()
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// testTracefs holds tracepoint formats as the kernel prints them.
var testTracefs = fstest.MapFS{
	"events/syscalls/sys_enter_openat/format": {Data: []byte(`name: sys_enter_openat
ID: 782
format:
	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
	field:unsigned char common_flags;	offset:2;	size:1;	signed:0;
	field:unsigned char common_preempt_count;	offset:3;	size:1;	signed:0;
	field:int common_pid;	offset:4;	size:4;	signed:1;

	field:int __syscall_nr;	offset:8;	size:4;	signed:1;
	field:int dfd;	offset:16;	size:8;	signed:0;
	field:const char * filename;	offset:24;	size:8;	signed:0;
	field:int flags;	offset:32;	size:8;	signed:0;
	field:umode_t mode;	offset:40;	size:8;	signed:0;

print fmt: "dfd: 0x%08lx, filename: 0x%08lx, flags: 0x%08lx, mode: 0x%08lx", ((unsigned long)(REC->dfd)), ((unsigned long)(REC->filename)), ((unsigned long)(REC->flags)), ((unsigned long)(REC->mode))
`)},
	"events/raw_syscalls/sys_enter/format": {Data: []byte(`name: sys_enter
ID: 443
format:
	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
	field:unsigned char common_flags;	offset:2;	size:1;	signed:0;
	field:unsigned char common_preempt_count;	offset:3;	size:1;	signed:0;
	field:int common_pid;	offset:4;	size:4;	signed:1;

	field:long id;	offset:8;	size:8;	signed:1;
	field:unsigned long args[6];	offset:16;	size:48;	signed:0;

print fmt: "NR %ld (%lx, %lx, %lx, %lx, %lx, %lx)", REC->id, REC->args[0], REC->args[1], REC->args[2], REC->args[3], REC->args[4], REC->args[5]
`)},
	"events/sched/sched_wakeup/format": {Data: []byte(`name: sched_wakeup
ID: 320
format:
	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
	field:unsigned char common_flags;	offset:2;	size:1;	signed:0;
	field:unsigned char common_preempt_count;	offset:3;	size:1;	signed:0;
	field:int common_pid;	offset:4;	size:4;	signed:1;

	field:char comm[16];	offset:8;	size:16;	signed:0;
	field:pid_t pid;	offset:24;	size:4;	signed:1;
	field:int prio;	offset:28;	size:4;	signed:1;
	field:int target_cpu;	offset:32;	size:4;	signed:1;

print fmt: "comm=%s pid=%d prio=%d target_cpu=%03d", REC->comm, REC->pid, REC->prio, REC->target_cpu
`)},
}

func TestValidateAgainstKernel(t *testing.T) {
	spec := testKernel(t)
	tests := []struct {
		name    string
		src     string
		tracefs bool
		want    []string
	}{
		{"everything fits", header + `  kprobes:
  - call: fd_install
    syscall: false
    args: [{index: 0, type: fd}, {index: 1, type: file}]
  - call: security_kernel_read_file
    syscall: false
    args: [{index: 0, type: file}, {index: 1, type: int}, {index: 2, type: uint8}]
    return: true
    returnArg: {type: int}
  - call: cap_capable
    syscall: false
    args: [{index: 0, type: cred}, {index: 2, type: capability}, {index: 3, type: uint64}]
  - call: strncpy_from_user
    syscall: false
    args: [{index: 0, type: char_buf, sizeArgIndex: 3}, {index: 1, type: string}, {index: 2, type: int64}]
  - call: sys_openat
    args: [{index: 0, type: int}, {index: 1, type: string}, {index: 3, type: uint16}]
  lsmhooks:
  - hook: file_open
    args: [{index: 0, type: file}]
  - hook: path_mkdir
    args: [{index: 0, type: path}, {index: 2, type: int}]
  tracepoints:
  - subsystem: sched
    event: sched_process_exec
    args: [{index: 4, type: string}, {index: 5, type: int}]
  - subsystem: sched
    event: sched_switch
    args: [{index: 7, type: int}]
  - subsystem: raw_syscalls
    event: sys_enter
    args: [{index: 4, type: int64}]
  - subsystem: sched
    event: sched_wakeup
    args: [{index: 4, type: string}, {index: 5, type: int}]
`, true, nil},

		{"functions", header + `  kprobes:
  - call: fd_install
    syscall: false
    args: [{index: 0, type: file}, {index: 1, type: string}, {index: 2, type: int}]
    return: true
    returnArg: {type: int}
  - call: fd_instal
    syscall: false
  - call: sys_openat
    syscall: false
  - call: security_kernel_read_file
    syscall: false
    args: [{index: 1, type: char_buf, sizeArgIndex: 1}]
    return: true
    returnArg: {type: file}
`, false, []string{
			`p.yaml:9: spec.kprobes[0].args[0].type: "file" does not fit parameter 0 of fd_install (unsigned int fd): file needs a struct file *`,
			`p.yaml:9: spec.kprobes[0].args[1].type: "string" does not fit parameter 1 of fd_install (struct file *file): string needs a char * (or a char array)`,
			`p.yaml:9: spec.kprobes[0].args[2].index: index 2 is out of range: fd_install has 2 parameters (0: unsigned int fd, 1: struct file *file)`,
			`p.yaml:11: spec.kprobes[0].returnArg.type: fd_install returns nothing (void); remove return and returnArg`,
			`p.yaml:12: spec.kprobes[1].call: kernel function "fd_instal" not found in the kernel's BTF (did you mean "fd_install"?)`,
			`p.yaml:14: spec.kprobes[2].call: kernel function "sys_openat" not found in the kernel's BTF (it is a syscall: set syscall: true and call: sys_openat)`,
			`p.yaml:18: spec.kprobes[3].args[0].type: "char_buf" does not fit parameter 1 of security_kernel_read_file (enum kernel_read_file_id id): char_buf needs a char * or void * buffer`,
			`p.yaml:18: spec.kprobes[3].args[0].sizeArgIndex: sizeArgIndex 1 names parameter 0 of security_kernel_read_file (struct file *file), which is not an integer size (sizeArgIndex is 1-based)`,
			`p.yaml:20: spec.kprobes[3].returnArg.type: "file" does not fit the return type of security_kernel_read_file (int): file needs a struct file *`,
		}},

		{"syscalls with tracefs", header + `  kprobes:
  - call: sys_openat
    args: [{index: 1, type: int}, {index: 4, type: int}]
  - call: sys_opnat
  - call: sys_write
    args: [{index: 5, type: int}]
`, true, []string{
			`p.yaml:8: spec.kprobes[0].args[0].type: "int32" does not fit argument 1 of sys_openat (const char *filename): int32 needs an integer`,
			`p.yaml:8: spec.kprobes[0].args[1].index: index 4 is out of range: sys_openat has 4 arguments (0: int dfd, 1: const char *filename, 2: int flags, 3: umode_t mode)`,
			`p.yaml:9: spec.kprobes[1].call: unknown syscall "sys_opnat" on this kernel (did you mean "sys_openat"?)`,
		}},
		{"syscalls without tracefs", header + `  kprobes:
  - call: sys_openat
    args: [{index: 1, type: int}]
  - call: sys_opnat
`, false, []string{
			`p.yaml:9: spec.kprobes[1].call: unknown syscall "sys_opnat" on this kernel (did you mean "sys_openat"?)`,
		}},

		{"lsm hooks", header + `  lsmhooks:
  - hook: file_opn
  - hook: task_free
    selectors:
    - matchActions: [{action: Override, argError: -1}]
  - hook: path_mkdir
    args: [{index: 0, type: file}, {index: 1, type: path}]
`, false, []string{
			`p.yaml:7: spec.lsmhooks[0].hook: LSM hook "file_opn" not found: the kernel's BTF has no bpf_lsm_file_opn (a misspelt hook, or one this kernel does not have) (did you mean "file_open"?)`,
			`p.yaml:10: spec.lsmhooks[1].selectors[0].matchActions[0].action: LSM hook task_free returns nothing, so Override cannot deny it; use Sigkill or another hook`,
			`p.yaml:12: spec.lsmhooks[2].args[0].type: "file" does not fit parameter 0 of path_mkdir (const struct path *dir): file needs a struct file *`,
			`p.yaml:12: spec.lsmhooks[2].args[1].type: "path" does not fit parameter 1 of path_mkdir (struct dentry *dentry): path needs a struct path *`,
		}},

		{"tracepoints from BTF", header + `  tracepoints:
  - subsystem: sched
    event: sched_process_exec
    args: [{index: 3, type: string}, {index: 7, type: int}]
  - subsystem: sched
    event: sched_process_exit
  - subsystem: syscalls
    event: sys_enter_openat
  - subsystem: syscalls
    event: sys_enter_nosuch
`, false, []string{
			`p.yaml:9: spec.tracepoints[0].args[0].type: "string" does not fit field 3 of sched/sched_process_exec (int common_pid): string needs a char * (or a char array)`,
			`p.yaml:9: spec.tracepoints[0].args[1].index: index 7 is out of range: sched/sched_process_exec has 7 fields (0: short unsigned int common_type, 1: unsigned char common_flags, 2: unsigned char common_preempt_count, 3: int common_pid, 4: __data_loc char[] filename, 5: int pid, 6: int old_pid)`,
			`p.yaml:11: spec.tracepoints[1].event: tracepoint sched/sched_process_exit not found on this kernel`,
			`p.yaml:15: spec.tracepoints[3].event: tracepoint syscalls/sys_enter_nosuch not found on this kernel`,
		}},
		{"tracepoints from tracefs", header + `  tracepoints:
  - subsystem: raw_syscalls
    event: sys_enter
    args: [{index: 5, type: uint64}]
  - subsystem: sched
    event: sched_wakeup
    args: [{index: 4, type: int}]
`, true, []string{
			`p.yaml:9: spec.tracepoints[0].args[0].type: "uint64" does not fit field 5 of raw_syscalls/sys_enter (unsigned long args[6]): uint64 needs an integer or a pointer`,
			`p.yaml:12: spec.tracepoints[1].args[0].type: "int32" does not fit field 4 of sched/sched_wakeup (char comm[16]): int32 needs an integer`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			policies, err := Parse("p.yaml", []byte(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			opts := &ValidateOptions{}
			if tt.tracefs {
				opts.Tracefs = testTracefs
			}
			warnings, err := Validate(policies[0], spec, opts)
			if diff := cmp.Diff(tt.want, errLines(err)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if len(warnings) != 0 {
				t.Errorf("unexpected warnings: %v", warnings)
			}
		})
	}
}

func TestValidateWithoutKernel(t *testing.T) {
	policies, err := Parse("p.yaml", []byte(header+"  kprobes: [{call: no_such_function, syscall: false}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if w, err := Validate(policies[0], nil, nil); err != nil || w != nil {
		t.Errorf("Validate without a kernel = %v, %v; want nothing to check", w, err)
	}
}

func TestParseFormat(t *testing.T) {
	fields, err := parseFormat(testTracefs["events/sched/sched_wakeup/format"].Data)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fields {
		got = append(got, f.String())
	}
	want := []string{"unsigned short common_type", "unsigned char common_flags", "unsigned char common_preempt_count", "int common_pid", "char comm[16]", "pid_t pid", "int prio", "int target_cpu"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
	for decl, want := range map[string]string{
		"__data_loc char[] name":  "__data_loc char[] name",
		"__rel_loc char[] name":   "__rel_loc char[] name",
		"const char * filename":   "const char *filename",
		"struct sockaddr * addr":  "struct sockaddr *addr",
		"unsigned long args[6]":   "unsigned long args[6]",
		"__u8 saddr[4]":           "__u8 saddr[4]",
		"const struct cred * old": "const struct cred *old",
	} {
		p, err := parseDecl(decl)
		if err != nil || p.String() != want {
			t.Errorf("parseDecl(%q) = %q, %v; want %q", decl, p, err, want)
		}
	}
	for _, bad := range []string{"no format here", "format:\n\tfield:int;\toffset:0;\tsize:4;\tsigned:1;\n", "format:\n\tgarbage\n"} {
		if _, err := parseFormat([]byte(bad)); err == nil {
			t.Errorf("parseFormat(%q) succeeded", bad)
		}
	}
}

// Capability names are read as the kernel's headers spell them, and as
// Tetragon's capability enum does (DAC_OVERRIDE is its one name without
// the prefix).
func TestCapabilityNames(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		err  string
	}{
		{in: "CAP_DAC_OVERRIDE", want: 1},
		{in: "DAC_OVERRIDE", want: 1},
		{in: "CAP_SYS_ADMIN", want: 21},
		{in: "SYS_ADMIN", err: `"SYS_ADMIN" is not a capability name; write CAP_SYS_ADMIN`},
	} {
		got, err := parseCapability(tc.in, false)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%s: %d, %v; want the error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}
