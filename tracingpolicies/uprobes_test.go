package tracingpolicies

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/internal/uprobetarget"
)

func TestParseUprobes(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"symbols, args and selectors", header + `  uprobes:
  - path: /usr/bin/bash
    symbols: [readline, shell_execve]
    refCtrOffsets: [0x1000, 0x1008]
    message: interactive shell
    args:
    - {index: 0, type: string}
    - {index: 1, type: char_buf, sizeArgIndex: 3}
    - {index: 2, type: uint64}
    selectors:
    - matchArgs: [{index: 0, operator: Prefix, values: ["curl "]}]
      matchPIDs: [{operator: NotIn, values: [1]}]
      matchActions: [{action: Sigkill}]
    - matchBinaries: [{operator: In, values: [/usr/bin/bash]}]
      matchActions: [{action: Signal, argSig: 10}]
`, nil},
		{"offsets", header + "  uprobes:\n  - path: /usr/lib/libssl.so.3\n    offsets: [0x3a2f0]\n", nil},
		{"Sigkill on every caller of a library function", header + `  uprobes:
  - path: /lib/x86_64-linux-gnu/libc.so.6
    symbols: [malloc]
    selectors:
    - matchActions: [{action: Sigkill}]
    - matchBinaries: [{operator: In, values: [/usr/bin/bash]}]
      matchActions: [{action: Sigkill}]
`, []string{
			`p.yaml:10: spec.uprobes[0].selectors[0].matchActions: REFUSED: Sigkill on /lib/x86_64-linux-gnu/libc.so.6:malloc with no filter restricting it: every process of the node calling it through the shared library would be killed, system daemons included. Restrict this selector with matchArgs, matchBinaries (In, Prefix, Postfix), matchPIDs (In) or matchNamespaces (In an inode); or, if this is really what you want, add to spec.options: {name: allow-unrestricted-enforcement, value: "true"}`,
		}},
		{"what cannot be honoured", header + `  uprobes:
  - path: bash
    symbols: [readline, readline]
    offsets: [12]
    btfPath: /sys/kernel/btf/bash
    return: true
    binaryDigests: [sha256:00]
    args:
    - {index: 0, type: file}
    - {index: 1, type: fd}
    - {index: 2, type: uint64, resolve: f_path}
    selectors:
    - matchActions: [{action: Override, argError: -1}]
    - matchReturnArgs: [{operator: Equal, values: ["0"]}]
  - path: /usr/bin/bash
    addrs: [0x4000]
  - path: /usr/bin/bash
  - path: /usr/bin/bash
    symbols: [readline]
    refCtrOffsets: [1, 2]
`, []string{
			`p.yaml:7: spec.uprobes[0].path: "bash" is not an absolute path`,
			`p.yaml:9: spec.uprobes[0].offsets: a uprobe names symbols or file offsets, not both`,
			`p.yaml:8: spec.uprobes[0].symbols[1]: "readline" is already probed by symbols[0]`,
			`p.yaml:10: spec.uprobes[0].btfPath: not supported by Vigil: arguments are read from the registers of the C calling convention; BTF of user binaries is not used`,
			`p.yaml:11: spec.uprobes[0].return: not supported by Vigil: return probes (uretprobes) are not implemented`,
			`p.yaml:12: spec.uprobes[0].binaryDigests: not supported by Vigil: probes are not conditioned on the binary's digest`,
			`p.yaml:14: spec.uprobes[0].args[0].type: file needs a struct file *, and a user function's arguments are integers and pointers to user memory; read it as an integer, a string or a char_buf`,
			`p.yaml:15: spec.uprobes[0].args[1].type: fd resolves a descriptor of the calling process in the kernel, which a uprobe's program does not; read it as an int`,
			`p.yaml:16: spec.uprobes[0].args[2].resolve: not supported by Vigil: resolve follows kernel structures through the kernel's BTF; a user function's structures are not described there`,
			`p.yaml:18: spec.uprobes[0].selectors[0].matchActions[0].action: not supported by Vigil: overriding a user function's return value is not implemented; use Sigkill or Signal`,
			`p.yaml:19: spec.uprobes[0].selectors[1].matchReturnArgs: only kprobes and syscalls have a return value to match`,
			`p.yaml:21: spec.uprobes[1].addrs: not supported by Vigil: probes at virtual addresses are not implemented; give symbols or file offsets`,
			`p.yaml:22: spec.uprobes[2].symbols: missing: name the functions to probe (symbols) or their file offsets (offsets)`,
			`p.yaml:25: spec.uprobes[3].refCtrOffsets: 2 refCtrOffsets for 1 probes: give one per symbol or offset`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("p.yaml", []byte(tt.src))
			if diff := cmp.Diff(tt.want, errLines(err)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

// The binary of a uprobe and its symbols are looked up on the node when the
// policy is validated, with or without the kernel's BTF.
func TestValidateUprobes(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "target")
	if err := uprobetarget.Write(exe); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(exe)
	if err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf(header+`  uprobes:
  - path: %[1]s
    symbols: [%[3]s, vigil_uprobe_targe]
  - path: /nonexistent/vigil-uprobe-target
    symbols: [main]
  - path: %[1]s
    offsets: [%[4]d, %[2]d]
  - path: /proc/self/status
    symbols: [main]
  - path: /dev/null
    symbols: [main]
`, exe, fi.Size(), uprobetarget.Symbol, uprobetarget.Offset)
	ps, err := Parse("p.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Validate(ps[0], nil, nil)
	want := []string{
		fmt.Sprintf(`p.yaml:8: spec.uprobes[0].symbols[1]: %s has no function "vigil_uprobe_targe" (did you mean "vigil_uprobe_target"?)`, exe),
		`p.yaml:9: spec.uprobes[1].path: /nonexistent/vigil-uprobe-target: no such file`,
		fmt.Sprintf(`p.yaml:12: spec.uprobes[2].offsets[1]: offset %#x is past the end of %s (%d bytes)`, fi.Size(), exe, fi.Size()),
		`p.yaml:13: spec.uprobes[3].path: /proc/self/status is not an ELF executable or library: bad magic number '[78 97 109 101]' in record at byte 0x0`,
		`p.yaml:15: spec.uprobes[4].path: /dev/null is not a regular file`,
	}
	if diff := cmp.Diff(want, errLines(err)); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

func TestParseUSDTArgs(t *testing.T) {
	got, err := ParseUSDTArgs(uprobetarget.USDTArgs + " 4@-20(%rbp) 1@%r8b")
	if err != nil {
		t.Fatal(err)
	}
	want := []USDTArg{
		{Kind: USDTReg, Size: 4, Signed: true, Reg: "rdi", RegOff: 112},
		{Kind: USDTReg, Size: 8, Reg: "rsi", RegOff: 104},
		{Kind: USDTReg, Size: 8, Reg: "rdx", RegOff: 96},
		{Kind: USDTDeref, Size: 8, Reg: "rsp", RegOff: 152, Val: 8},
		{Kind: USDTConst, Size: 2, Signed: true, Val: -3},
		{Kind: USDTDeref, Size: 4, Reg: "rbp", RegOff: 32, Val: -20},
		{Kind: USDTReg, Size: 1, Reg: "r8", RegOff: 72},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for spec, msg := range map[string]string{
		"8@(%rax,%rbx,8)": `argument "8@(%rax,%rbx,8)": only REGISTER and DISPLACEMENT(REGISTER) are read, not indexed addressing`,
		"3@%rax":          `argument "3@%rax": size 3 is not 1, 2, 4 or 8`,
		"8@%xmm0":         `argument "8@%xmm0": "%xmm0" is not an x86-64 register`,
		"%rax":            `argument "%rax": no SIZE@ in front`,
		"8@sym(%rip)":     `argument "8@sym(%rip)": displacement "sym" is not a number (symbolic addresses are not read)`,
	} {
		if _, err := ParseUSDTArgs(spec); err == nil || err.Error() != msg {
			t.Errorf("%s: %v, want %s", spec, err, msg)
		}
	}
}

// A USDT probe's sites and arguments are found in the file's
// .note.stapsdt when the policy is validated.
func TestValidateUSDT(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "target")
	if err := uprobetarget.Write(exe); err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf(header+`  usdts:
  - path: %[1]s
    provider: vigil
    name: target
    args: [{index: 0, type: int}, {index: 4, type: int16}]
  - path: %[1]s
    provider: vigil
    name: targe
  - path: %[1]s
    provider: vigil
    name: target
    args: [{index: 5, type: int}]
`, exe)
	ps, err := Parse("p.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Validate(ps[0], nil, nil)
	want := []string{
		fmt.Sprintf(`p.yaml:13: spec.usdts[1].name: %s has no USDT probe vigil:targe (did you mean "vigil:target"?)`, exe),
		`p.yaml:17: spec.usdts[2].args[0].index: USDT probe vigil:target has 5 arguments (indexes 0 to 4)`,
	}
	if diff := cmp.Diff(want, errLines(err)); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
	h := ps[0].Hooks[0]
	if len(h.Sites) != 1 || h.Sites[0].Offset != uprobetarget.Offset || len(h.Sites[0].Args) != 5 {
		t.Errorf("sites %+v, want one at %#x with 5 arguments", h.Sites, uprobetarget.Offset)
	}
}
