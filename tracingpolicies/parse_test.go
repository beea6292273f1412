package tracingpolicies

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/internal/manifest"
)

// header is the start of a test document; the spec's first line is line 6.
const header = "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: t\nspec:\n"

func errLines(err error) []string {
	var out []string
	for _, e := range manifest.AsErrors("p.yaml", err) {
		out = append(out, e.Error())
	}
	return out
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"misspelt field", header + `  kprobes:
  - call: fd_install
    syscall: false
    args: [{index: 0, type: int}]
    selectors:
    - matchArgs:
      - index: 0
        operatr: Equal
`, []string{`p.yaml:13: spec.kprobes[0].selectors[0].matchArgs[0].operatr: unknown field "operatr" (did you mean "operator"?)`}},

		{"wrong api version", "apiVersion: cilium.io/v1\nkind: TracingPolicy\nmetadata: {name: t}\nspec: {}\n",
			[]string{`p.yaml:1: apiVersion: "cilium.io/v1" is not a TracingPolicy API version (want cilium.io/v1alpha1 or vigil.dev/v1alpha1)`}},
		{"wrong kind", "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicyNamespace\nmetadata: {name: t}\nspec: {}\n",
			[]string{`p.yaml:2: kind: "TracingPolicyNamespace" is not a tracing policy kind (want TracingPolicy or TracingPolicyNamespaced) (did you mean "TracingPolicyNamespaced"?)`}},
		{"no hooks", header + "  options: []\n",
			[]string{`p.yaml:5: spec: the policy has no hooks: add spec.kprobes, spec.tracepoints, spec.lsmhooks, spec.uprobes or spec.usdts`}},

		{"metadata", "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: Bad_Name\n  namespace: default\nspec:\n  lsmhooks: [{hook: file_open}]\n",
			[]string{
				`p.yaml:4: metadata.name: "Bad_Name" is not a valid name: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`,
				`p.yaml:5: metadata.namespace: a TracingPolicy is cluster-wide and has no namespace; use kind TracingPolicyNamespaced to restrict it to namespace "default"`,
			}},
		{"unsupported spec fields", header + "  lsmhooks: [{hook: file_open}]\n  loader: true\n  hostSelector: {}\n",
			[]string{
				`p.yaml:7: spec.loader: not supported by Vigil: Vigil reports loader events only through its own sensors`,
				`p.yaml:8: spec.hostSelector: not supported by Vigil: a policy without podSelector or containerSelector applies to host processes too`,
			}},
		{"default values of unsupported fields are accepted", header + `  kprobes:
  - call: sys_openat
    ignore: {callNotFound: false}
    returnArgAction: ""
    args:
    - {index: 1, type: string, resolve: "", maxData: false, returnCopy: false, sizeArgIndex: 0}
`, nil},

		{"syscall defaults to true", header + "  kprobes:\n  - call: fd_install\n",
			[]string{`p.yaml:7: spec.kprobes[0].call: "fd_install" is not a syscall name (sys_NAME), and syscall defaults to true as in Tetragon; set syscall: false to hook the kernel function fd_install`}},
		{"compat syscall", header + "  kprobes:\n  - call: __ia32_sys_dup\n",
			[]string{`p.yaml:7: spec.kprobes[0].call: "__ia32_sys_dup": 32-bit compat syscalls are not supported by Vigil; write sys_NAME for the native syscall`}},
		{"lsm hook with prefix", header + "  lsmhooks:\n  - hook: security_file_open\n",
			[]string{`p.yaml:7: spec.lsmhooks[0].hook: "security_file_open": write the LSM hook's name without prefix, such as "file_open"`}},
		{"tracepoint fields", header + "  tracepoints:\n  - subsystem: sched\n  - event: sys_enter\n    raw: true\n",
			[]string{
				`p.yaml:7: spec.tracepoints[0].event: missing: name the tracepoint, such as sched_process_exec or sys_enter`,
				`p.yaml:8: spec.tracepoints[1].subsystem: missing: name the tracepoint's subsystem, such as sched or raw_syscalls`,
			}},

		{"argument types", header + `  kprobes:
  - call: sys_write
    args:
    - {index: 0, type: unit64}
    - {index: 1, type: const_buf}
    - {index: 2, type: bogus}
    - {index: 3}
    - {index: 4, type: int, resolve: pid}
    - {index: 6, type: int}
`, []string{
			`p.yaml:9: spec.kprobes[0].args[0].type: unknown type "unit64" (did you mean "int64"?)`,
			`p.yaml:10: spec.kprobes[0].args[1].type: type "const_buf" is not supported by Vigil: use char_buf with sizeArgIndex`,
			`p.yaml:11: spec.kprobes[0].args[2].type: unknown type "bogus"`,
			`p.yaml:12: spec.kprobes[0].args[3].type: missing: give the argument's type, such as int, string, file or sock`,
			`p.yaml:13: spec.kprobes[0].args[4].resolve: resolve reads kernel structures through BTF, and a syscall's arguments are integers and pointers to user memory; hook a kernel function, an LSM hook or a raw tracepoint`,
			`p.yaml:14: spec.kprobes[0].args[5].index: index 6 is out of range: arguments are read from the first 6 parameters (0 to 5)`,
		}},
		{"kernel objects are not syscall arguments", header + `  kprobes:
  - call: sys_openat
    args: [{index: 0, type: file}, {index: 1, type: string}]
    selectors:
    - matchArgs: [{index: 0, operator: Equal, values: [/etc/passwd]}]
`, []string{
			`p.yaml:8: spec.kprobes[0].args[0].type: file needs a struct file *, and a syscall's arguments are integers and pointers to user memory; read an fd, a string or a sockaddr, or hook a kernel function that takes one`,
		}},
		{"argument options", header + `  kprobes:
  - call: sys_write
    args:
    - {index: 0, type: int, sizeArgIndex: 2}
    - {index: 1, type: char_buf, sizeArgIndex: 2}
    - {index: 2, type: char_buf, maxData: true, returnCopy: true}
    - {index: 1, type: int}
  lsmhooks:
  - hook: file_open
    args: [{index: 0, type: char_buf, returnCopy: true}]
`, []string{
			`p.yaml:9: spec.kprobes[0].args[0].sizeArgIndex: sizeArgIndex applies to char_buf and char_iovec only, not int32`,
			`p.yaml:10: spec.kprobes[0].args[1].sizeArgIndex: sizeArgIndex 2 names this argument itself; it is 1-based: the size of a buffer at index 1 passed with its size at index 2 is sizeArgIndex: 3`,
			`p.yaml:11: spec.kprobes[0].args[2].maxData: maxData cannot be combined with returnCopy`,
			`p.yaml:12: spec.kprobes[0].args[3].index: index 1 is already read by args[1]`,
			`p.yaml:15: spec.lsmhooks[0].args[0].returnCopy: returnCopy reads the buffer when the call returns, which only kprobes and syscalls can do`,
		}},
		{"return values", header + `  kprobes:
  - call: sys_openat
    return: true
  - call: sys_close
    returnArg: {type: int}
  - call: sys_dup
    return: true
    returnArg: {index: 1, type: string}
  - call: sys_dup2
    selectors:
    - matchReturnArgs: [{operator: Equal, values: ["0"]}]
`, []string{
			`p.yaml:7: spec.kprobes[0].returnArg: missing: return: true needs a returnArg giving the type of the return value`,
			`p.yaml:13: spec.kprobes[2].returnArg.index: the return value has no index; remove it`,
			`p.yaml:13: spec.kprobes[2].returnArg.type: a return value can be read as an integer type, sock or file, not string`,
			`p.yaml:16: spec.kprobes[3].selectors[0].matchReturnArgs[0]: matchReturnArgs needs return: true and a returnArg on the hook`,
		}},

		{"operators", header + `  kprobes:
  - call: do_sys_openat2
    syscall: false
    args:
    - {index: 0, type: int}
    - {index: 1, type: string}
    - {index: 3, type: cred}
    selectors:
    - matchArgs:
      - {index: 0, operator: Prefix, values: ["1"]}
      - {index: 1, operator: InMap, values: [a]}
      - {index: 1, operator: Equals, values: [a]}
      - {index: 2, operator: Equal, values: ["1"]}
      - {index: 3, operator: Equal, values: ["1"]}
`, []string{
			`p.yaml:15: spec.kprobes[0].selectors[0].matchArgs[0].operator: operator Prefix does not apply to a int32 argument (use Equal, NotEqual, GT, LT, Mask)`,
			`p.yaml:16: spec.kprobes[0].selectors[0].matchArgs[1].operator: operator "InMap": not supported by Vigil; use Equal with up to 64 values`,
			`p.yaml:17: spec.kprobes[0].selectors[0].matchArgs[2].operator: unknown operator "Equals" (did you mean "Equal"?)`,
			`p.yaml:18: spec.kprobes[0].selectors[0].matchArgs[3].index: no entry of args reads index 2: add one (index: 2, type: ...) so the filter knows the argument's type`,
			`p.yaml:19: spec.kprobes[0].selectors[0].matchArgs[4].operator: cred arguments cannot be filtered`,
		}},
		{"integer values", header + `  kprobes:
  - call: sys_ptrace
    args:
    - {index: 0, type: uint8}
    - {index: 1, type: int16}
    - {index: 2, type: uint64}
    selectors:
    - matchArgs:
      - {index: 0, operator: GT, values: ["256"]}
      - {index: 1, operator: LT, values: ["-32769", "0xcoffee"]}
      - {index: 2, operator: Mask, values: ["-1", "18446744073709551616"]}
`, []string{
			`p.yaml:14: spec.kprobes[0].selectors[0].matchArgs[0].values[0]: 256 is out of range for a 8-bit unsigned integer`,
			`p.yaml:15: spec.kprobes[0].selectors[0].matchArgs[1].values[0]: -32769 is out of range for a 16-bit signed integer`,
			`p.yaml:15: spec.kprobes[0].selectors[0].matchArgs[1].values[1]: "0xcoffee" is not an integer (decimal, 0x hexadecimal or 0 octal)`,
			`p.yaml:16: spec.kprobes[0].selectors[0].matchArgs[2].values[0]: -1 is negative, and the argument is unsigned`,
			`p.yaml:16: spec.kprobes[0].selectors[0].matchArgs[2].values[1]: 18446744073709551616 is out of range for a 64-bit integer`,
		}},
		{"network values", header + `  kprobes:
  - call: tcp_connect
    syscall: false
    args: [{index: 0, type: sock}]
    selectors:
    - matchArgs:
      - {index: 0, operator: DAddr, values: [10.0.0.1/8, 300.1.1.1, "fd00::/129"]}
      - {index: 0, operator: DPort, values: ["65536", "90:80", http]}
      - {index: 0, operator: Protocol, values: [IPPROTO_TPC, "70000"]}
      - {index: 0, operator: Family, values: [AF_INET7, "46"]}
      - {index: 0, operator: Prefix, values: [a]}
`, []string{
			`p.yaml:12: spec.kprobes[0].selectors[0].matchArgs[0].values[1]: "300.1.1.1" is not an IP address or CIDR`,
			`p.yaml:12: spec.kprobes[0].selectors[0].matchArgs[0].values[2]: "fd00::/129" is not a CIDR such as 10.0.0.0/8 or fd00::/8`,
			`p.yaml:13: spec.kprobes[0].selectors[0].matchArgs[1].values[0]: "65536" is not a port: want a number from 0 to 65535 or a range MIN:MAX`,
			`p.yaml:13: spec.kprobes[0].selectors[0].matchArgs[1].values[1]: port range 90:80 is empty: 90 is greater than 80`,
			`p.yaml:13: spec.kprobes[0].selectors[0].matchArgs[1].values[2]: "http" is not a port: want a number from 0 to 65535 or a range MIN:MAX`,
			`p.yaml:14: spec.kprobes[0].selectors[0].matchArgs[2].values[0]: "IPPROTO_TPC" is not a protocol: want a number or a name such as IPPROTO_TCP (did you mean "IPPROTO_TP"?)`,
			`p.yaml:14: spec.kprobes[0].selectors[0].matchArgs[2].values[1]: protocol 70000 is out of range (0 to 65535)`,
			`p.yaml:15: spec.kprobes[0].selectors[0].matchArgs[3].values[0]: "AF_INET7" is not an address family: want a number or a name such as AF_INET or AF_INET6 (did you mean "AF_INET"?)`,
			`p.yaml:15: spec.kprobes[0].selectors[0].matchArgs[3].values[1]: address family 46 is out of range (0 to 45)`,
			`p.yaml:16: spec.kprobes[0].selectors[0].matchArgs[4].operator: operator Prefix does not apply to a sock argument (use SAddr, DAddr, NotSAddr, NotDAddr, SPort, DPort, NotSPort, NotDPort, Protocol, Family, State)`,
		}},
		{"sockaddr has one address", header + `  kprobes:
  - call: security_socket_connect
    syscall: false
    args: [{index: 1, type: sockaddr}]
    selectors:
    - matchArgs: [{index: 1, operator: DAddr, values: [10.0.0.0/8]}]
`, []string{
			`p.yaml:11: spec.kprobes[0].selectors[0].matchArgs[0].operator: operator DAddr does not apply to a sockaddr argument (use SAddr, NotSAddr, SPort, NotSPort, Family)`,
		}},
		{"string values", header + `  kprobes:
  - call: security_file_open
    syscall: false
    args: [{index: 0, type: file}]
    selectors:
    - matchArgs:
      - {index: 0, operator: Equal, values: ["", etc/passwd, "/etc/a\0b"]}
      - {index: 0, operator: Postfix, values: [passwd]}
      - {index: 0, operator: Prefix, values: ["/` + strings.Repeat("a", MaxPrefixValueLen) + `"]}
`, []string{
			`p.yaml:12: spec.kprobes[0].selectors[0].matchArgs[0].values[0]: empty value`,
			`p.yaml:12: spec.kprobes[0].selectors[0].matchArgs[0].values[2]: the value contains a NUL byte`,
			`p.yaml:14: spec.kprobes[0].selectors[0].matchArgs[2].values[0]: value is 253 bytes long; Prefix compares at most 252`,
		}},
		{"capability and signal values", header + `  kprobes:
  - call: cap_capable
    syscall: false
    args: [{index: 2, type: capability}, {index: 1, type: kernel_cap_t}]
    selectors:
    - matchArgs:
      - {index: 2, operator: Equal, values: [CAP_SYS_ADMN, "41"]}
      - {index: 1, operator: Mask, values: [CAP_NET_RAW, sys_admin]}
      matchCapabilities:
      - {operator: In, values: [sys_admin, CAP_BOGUS]}
      - {type: effective, operator: In, values: [CAP_BPF]}
      matchActions: [{action: Signal, argSig: "65"}]
    - matchActions: [{action: Signal, argSig: SIGFOO}, {action: Signal}]
    - matchActions: [{action: signal}]
`, []string{
			`p.yaml:12: spec.kprobes[0].selectors[0].matchArgs[0].values[0]: "CAP_SYS_ADMN" is not a capability name such as CAP_SYS_ADMIN (did you mean "CAP_SYS_ADMIN"?)`,
			`p.yaml:12: spec.kprobes[0].selectors[0].matchArgs[0].values[1]: capability 41 is out of range (0 to 40)`,
			`p.yaml:13: spec.kprobes[0].selectors[0].matchArgs[1].values[1]: "sys_admin" is neither a capability name (CAP_SYS_ADMIN) nor a capability mask`,
			`p.yaml:15: spec.kprobes[0].selectors[0].matchCapabilities[0].values[0]: "sys_admin" is not a capability name; write CAP_SYS_ADMIN`,
			`p.yaml:15: spec.kprobes[0].selectors[0].matchCapabilities[0].values[1]: "CAP_BOGUS" is not a capability name such as CAP_SYS_ADMIN`,
			`p.yaml:16: spec.kprobes[0].selectors[0].matchCapabilities[1].type: "effective" is not a capability set (want Effective, Inheritable or Permitted) (did you mean "Effective"?)`,
			`p.yaml:17: spec.kprobes[0].selectors[0].matchActions[0].argSig: signal 65 is out of range (1 to 64)`,
			`p.yaml:18: spec.kprobes[0].selectors[1].matchActions[0].argSig: "SIGFOO" is not a signal: want a number from 1 to 64 or a name such as SIGKILL`,
			`p.yaml:18: spec.kprobes[0].selectors[1].matchActions[1].argSig: missing: Signal needs the signal to send, such as 9 or SIGKILL`,
			`p.yaml:19: spec.kprobes[0].selectors[2].matchActions[0].argSig: missing: Signal needs the signal to send, such as 9 or SIGKILL`,
		}},
		{"actions", header + `  kprobes:
  - call: sys_symlinkat
    selectors:
    - matchActions: [{action: Override}, {action: Overide}, {action: GetUrl, argUrl: "http://x"}]
    - matchActions: [{action: Override, argError: 13}, {action: Post, argError: -1}]
    - matchActions: [{action: Override, argError: -5000}, {action: Sigkill, rateLimit: 1m}]
    - matchActions: [{action: Post}, {action: NoPost}, {action: post}]
    - matchActions: [{action: Post, rateLimit: 1d}]
    - matchActions: [{action: Post, rateLimit: "0"}]
    - matchActions: [{action: Post, rateLimit: 5m, rateLimitScope: global, kernelStackTrace: true}]
  tracepoints:
  - subsystem: raw_syscalls
    event: sys_enter
    selectors:
    - matchActions: [{action: Override, argError: -1}]
`, []string{
			`p.yaml:8: spec.kprobes[0].selectors: 7 selectors; a hook has at most 5`,
			`p.yaml:9: spec.kprobes[0].selectors[0].matchActions[0].argError: missing: Override needs the negative errno the call returns, such as -1 (EPERM) or -13 (EACCES)`,
			`p.yaml:9: spec.kprobes[0].selectors[0].matchActions[1].action: unknown action "Overide" (want Post, NoPost, Sigkill, Signal or Override) (did you mean "Override"?)`,
			`p.yaml:9: spec.kprobes[0].selectors[0].matchActions[2].action: action "GetUrl" is not supported by Vigil: Vigil makes no network requests on behalf of a policy; forward events to a webhook sink instead`,
			`p.yaml:10: spec.kprobes[0].selectors[1].matchActions[0].argError: 13: Override returns an error, so argError is a negative errno such as -13`,
			`p.yaml:11: spec.kprobes[0].selectors[2].matchActions[0].argError: -5000 is not an errno (-1 to -4095)`,
			`p.yaml:11: spec.kprobes[0].selectors[2].matchActions[1].rateLimit: rateLimit applies to Post only, not Sigkill`,
			`p.yaml:12: spec.kprobes[0].selectors[3].matchActions[2].action: Post is already an action of this selector (matchActions[0])`,
			`p.yaml:12: spec.kprobes[0].selectors[3].matchActions[1].action: Post and NoPost contradict each other; keep one`,
			`p.yaml:13: spec.kprobes[0].selectors[4].matchActions[0].rateLimit: "1d" is not a rate limit: want a number of seconds, or a number followed by s, m or h (30s, 5m, 1h)`,
			`p.yaml:14: spec.kprobes[0].selectors[5].matchActions[0].rateLimit: rate limit "0" is zero; omit rateLimit for no limit`,
			`p.yaml:15: spec.kprobes[0].selectors[6].matchActions[0].kernelStackTrace: not supported by Vigil: stack traces are not implemented`,
			`p.yaml:15: spec.kprobes[0].selectors[6].matchActions[0].rateLimitScope: not supported by Vigil: the rate limit applies per process (scope "process")`,
			`p.yaml:20: spec.tracepoints[0].selectors[0].matchActions[0].action: a tracepoint cannot change the result of a call; use Sigkill here, or hook an LSM hook or the syscall to Override`,
		}},
		{"process filters", header + `  lsmhooks:
  - hook: file_open
    selectors:
    - matchBinaries:
      - {operator: In, values: [bash, /bin/bash, /bin/bash]}
      - {operator: Prefix, followChildren: true, values: [/usr/]}
      - {operator: Equal, values: [/bin/sh]}
    - matchPIDs:
      - {operator: In, values: []}
      - {operator: Is, values: [1]}
      matchNamespaces:
      - {namespace: Mount, operator: In, values: [host_ns]}
      - {namespace: Pid, operator: In, values: [abc]}
      - {namespace: Pid, operator: NotIn, values: ["1"]}
`, []string{
			`p.yaml:9: spec.lsmhooks[0].selectors[0].matchBinaries: 3 matchBinaries entries; a selector has at most 2`,
			`p.yaml:10: spec.lsmhooks[0].selectors[0].matchBinaries[0].values[0]: "bash" is not an absolute path: matchBinaries compares the executable's full path (use Postfix to match its end)`,
			`p.yaml:10: spec.lsmhooks[0].selectors[0].matchBinaries[0].values[2]: "/bin/bash" is listed twice`,
			`p.yaml:11: spec.lsmhooks[0].selectors[0].matchBinaries[1].followChildren: followChildren works with In only, not Prefix`,
			`p.yaml:12: spec.lsmhooks[0].selectors[0].matchBinaries[2].operator: "Equal" is not a matchBinaries operator (want In, NotIn, Prefix, NotPrefix, Postfix or NotPostfix)`,
			`p.yaml:14: spec.lsmhooks[0].selectors[1].matchPIDs[0].values: missing: at least one value`,
			`p.yaml:15: spec.lsmhooks[0].selectors[1].matchPIDs[1].operator: "Is" is not an operator here (want In or NotIn) (did you mean "In"?)`,
			`p.yaml:17: spec.lsmhooks[0].selectors[1].matchNamespaces[0].namespace: "Mount" is not a namespace (want one of Uts, Ipc, Mnt, Pid, PidForChildren, Net, Time, TimeForChildren, Cgroup, User) (did you mean "Mnt"?)`,
			`p.yaml:18: spec.lsmhooks[0].selectors[1].matchNamespaces[1].values[0]: "abc" is not a namespace: want its inode number (as lsns shows it) or "host_ns"`,
			`p.yaml:19: spec.lsmhooks[0].selectors[1].matchNamespaces[2].namespace: namespace Pid is already filtered by spec.lsmhooks[0].selectors[1].matchNamespaces[1]; put all its values in one entry`,
		}},
		{"unsupported selector fields", header + `  lsmhooks:
  - hook: file_open
    selectors:
    - matchParentBinaries: [{operator: In, values: [/bin/sh]}]
      macros: [m]
`, []string{
			`p.yaml:9: spec.lsmhooks[0].selectors[0].matchParentBinaries: not supported by Vigil: parent binary filters are not implemented; use matchBinaries with followChildren`,
			`p.yaml:10: spec.lsmhooks[0].selectors[0].macros: not supported by Vigil: selector macros are not implemented; write the filters out`,
		}},

		{"limits", header + `  kprobes:
  - call: sys_openat
    args: [{index: 1, type: string}]
    selectors:
    - matchArgs:
      - {index: 1, operator: Equal, values: [` + strings.Repeat("/a,", MaxValuesPerFilter) + `/b]}
      - {index: 1, operator: Prefix, values: [/a]}
      - {index: 1, operator: Prefix, values: [/b]}
      - {index: 1, operator: Prefix, values: [/c]}
      - {index: 1, operator: Prefix, values: [/d]}
      - {index: 1, operator: Prefix, values: [/e]}
    tags: [` + strings.Repeat("t,", MaxTags) + `t]
`, []string{
			`p.yaml:17: spec.kprobes[0].tags: 17 tags; at most 16`,
			`p.yaml:10: spec.kprobes[0].selectors[0].matchArgs: 6 matchArgs; a selector has at most 5`,
			`p.yaml:11: spec.kprobes[0].selectors[0].matchArgs[0].values: 65 values; a filter has at most 64`,
		}},

		{"lists", header + `  lists:
  - name: dups
    type: syscalls
    values: [sys_dup, dup2, sys_dup]
  - name: all
    type: generated_syscalls
  - name: fns
    values: [fd_install]
  kprobes:
  - call: "list:dup"
  - call: "list:fns"
    syscall: true
  - call: "list:dups"
    syscall: false
`, []string{
			`p.yaml:9: spec.lists[0].values[1]: "dup2" is not a syscall name: write sys_NAME, such as sys_openat`,
			`p.yaml:9: spec.lists[0].values[2]: "sys_dup" is already listed (values[0])`,
			`p.yaml:11: spec.lists[1].type: not supported by Vigil: generated_syscalls would hook every syscall; use the raw_syscalls/sys_enter tracepoint, or list the syscalls`,
			`p.yaml:15: spec.kprobes[0].call: no list named "dup" in spec.lists (did you mean "dups"?)`,
			`p.yaml:17: spec.kprobes[1].syscall: list "fns" holds kernel functions (it has no type); set its type to syscalls, or remove syscall: true`,
			`p.yaml:19: spec.kprobes[2].syscall: list "dups" holds syscalls (type: syscalls); remove syscall: false`,
		}},

		{"options", header + `  lsmhooks: [{hook: file_open}]
  options:
  - {name: policy-mode, value: enforcement}
  - {name: disable-kprobe-multi, value: "1"}
  - {name: policy-mod, value: monitor}
  - {name: allow-unrestricted-enforcement, value: maybe}
  - {name: policy-mode, value: monitor}
`, []string{
			`p.yaml:8: spec.options[0].value: "enforcement" is not a policy mode (want "enforce" or "monitor")`,
			`p.yaml:9: spec.options[1].name: option "disable-kprobe-multi" is not supported by Vigil: Vigil decides per kernel whether to use kprobe.multi (see vigil probe)`,
			`p.yaml:10: spec.options[2].name: unknown option "policy-mod" (Vigil knows "policy-mode", "allow-unrestricted-enforcement", "allow-protected-enforcement" and "repeated-events") (did you mean "policy-mode"?)`,
			`p.yaml:11: spec.options[3].value: "maybe" is not a boolean (want "true" or "false")`,
			`p.yaml:12: spec.options[4].name: option "policy-mode" is already set by spec.options[0]`,
		}},
		{"workload selectors", header + `  lsmhooks: [{hook: file_open}]
  podSelector:
    matchLabels: {"app": "-bad"}
    matchExpressions:
    - {key: tier, operator: Has}
    - {key: env, operator: In}
  containerSelector:
    matchLabels: {image: nginx}
`, []string{
			`p.yaml:8: spec.podSelector.matchLabels.app: "-bad" is not a valid label value: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`,
			`p.yaml:10: spec.podSelector.matchExpressions[0].operator: "Has" is not a label selector operator (want In, NotIn, Exists or DoesNotExist)`,
			`p.yaml:11: spec.podSelector.matchExpressions[1].values: operator In needs at least one value`,
			`p.yaml:13: spec.containerSelector.matchLabels.image: "image" is not a container field (want one of name, repo)`,
		}},

		{"unrestricted enforcement is refused", header + `  lsmhooks:
  - hook: bprm_check_security
    args: [{index: 0, type: linux_binprm}]
    selectors:
    - matchBinaries: [{operator: NotIn, values: [/usr/bin/allowed]}]
      matchArgs: [{index: 0, operator: NotPrefix, values: [/usr/]}]
      matchActions: [{action: Override, argError: -1}]
  tracepoints:
  - subsystem: raw_syscalls
    event: sys_enter
    selectors:
    - matchNamespaces: [{namespace: Pid, operator: In, values: [host_ns]}]
      matchActions: [{action: Sigkill}]
`, []string{
			`p.yaml:18: spec.tracepoints[0].selectors[0].matchActions: REFUSED: Sigkill on raw_syscalls/sys_enter with no filter restricting it: every process making a system call would be killed: the node would stop working. Restrict this selector with matchArgs, matchBinaries (In, Prefix, Postfix), matchPIDs (In) or matchNamespaces (In an inode); or, if this is really what you want, add to spec.options: {name: allow-unrestricted-enforcement, value: "true"}`,
			`p.yaml:12: spec.lsmhooks[0].selectors[0].matchActions: REFUSED: Override on bprm_check_security with no filter restricting it: every program started on the node would be denied or killed, including the ones needed to repair it. Restrict this selector with matchArgs, matchBinaries (In, Prefix, Postfix), matchPIDs (In) or matchNamespaces (In an inode); or, if this is really what you want, add to spec.options: {name: allow-unrestricted-enforcement, value: "true"}`,
		}},
		{"restricted enforcement is accepted", header + `  kprobes:
  - call: sys_execve
    args: [{index: 0, type: string}]
    selectors:
    - matchArgs: [{index: 0, operator: Prefix, values: [/tmp/]}]
      matchActions: [{action: Sigkill}]
    - matchBinaries: [{operator: In, values: [/usr/bin/curl]}]
      matchActions: [{action: Signal, argSig: KILL}]
    - matchPIDs: [{operator: In, values: [1234]}]
      matchActions: [{action: Sigkill}]
    - matchNamespaces: [{namespace: Mnt, operator: In, values: ["4026532000"]}]
      matchActions: [{action: Sigkill}]
    - matchActions: [{action: Post}]
`, nil},

		{"duplicate policy", "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata: {name: a}\nspec: {lsmhooks: [{hook: file_open}]}\n---\napiVersion: vigil.dev/v1alpha1\nkind: TracingPolicy\nmetadata: {name: a}\nspec: {lsmhooks: [{hook: file_open}]}\n",
			[]string{`p.yaml:8: metadata.name: TracingPolicy "a" is defined twice (first at p.yaml:3)`}},
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

// Where Tetragon accepts odd input, Vigil does too, with a warning naming
// the field, and reads it as Tetragon does.
func TestParseTetragonLeniency(t *testing.T) {
	src := `apiVersion: cilium.io/v1alpha1
kind: TracingPolicyNamespaced
metadata:
  name: t
spec:
  kprobes:
  - call: security_file_permission
    syscall: false
    args: [{index: 0, type: file}]
    returnArg: {index: 0, type: int}
    selectors:
    - matchArgs: [{index: 0, operator: Prefix, values: [/etc, .bashrc]}]
      matchActions: [{action: Sigkill, argError: -1}]
  - call: tcp_connect
    syscall: false
    args: [{index: 0, type: sock}]
    selectors:
    - matchArgs: [{index: 0, operator: DAddr, values: [127.0.0.1/8]}]
  - call: security_inode_copy_up_xattr
    syscall: false
    args: [{index: 0, type: string}]
    selectors:
    - matchArgs: [{index: 0, operator: Equal, values: [security.capability]}]
      matchActions: [{action: Override, argError: 1}]
  tracepoints:
  - subsystem: raw_syscalls
    event: sys_enter
    args: [{index: 4, type: int64}]
    selectors:
    - matchArgs: [{index: 0, operator: Equal, values: ["59"]}]
`
	ps, err := Parse("p.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	var warns []string
	for _, w := range ps[0].Warnings {
		warns = append(warns, w.Error())
	}
	want := []string{
		`p.yaml:3: metadata.namespace: missing: a TracingPolicyNamespaced applies to the pods of one namespace; it is taken from the cluster object (kubectl apply -n) or --namespace, and the policy cannot load without one`,
		`p.yaml:7: spec.kprobes[0].return: returnArg is set but return is false, so the return value is not read; set return: true to read it`,
		`p.yaml:12: spec.kprobes[0].selectors[0].matchArgs[0].values[1]: ".bashrc" is not an absolute path: file arguments are reported as full paths, so it never matches (use Postfix to match the end of a path)`,
		`p.yaml:13: spec.kprobes[0].selectors[0].matchActions[0].argError: argError applies to Override only; Sigkill ignores it`,
		`p.yaml:18: spec.kprobes[1].selectors[0].matchArgs[0].values[0]: "127.0.0.1/8" has host bits set; it is read as 127.0.0.0/8, as Tetragon does`,
		`p.yaml:24: spec.kprobes[2].selectors[0].matchActions[0].argError: 1 is positive: the function returns 1 instead of running, which its callers read as that function defines it, not as an error`,
		`p.yaml:30: spec.tracepoints[0].selectors[0].matchArgs[0].index: no entry of args reads field 0; as in Tetragon it names args[0] (field 4) by position: write args: [0] to say so`,
	}
	if diff := cmp.Diff(want, warns); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
	p := ps[0]
	if p.Hooks[0].ReturnArg != nil || p.Hooks[0].Return {
		t.Errorf("returnArg without return: read as %v/%v, want it ignored", p.Hooks[0].Return, p.Hooks[0].ReturnArg)
	}
	if got := p.Hooks[1].Selectors[0].MatchArgs[0].Prefixes[0].String(); got != "127.0.0.0/8" {
		t.Errorf("127.0.0.1/8 read as %s", got)
	}
	if a := p.Hooks[2].Selectors[0].Actions[0]; a.Kind != ActionOverride || a.Error != 1 {
		t.Errorf("positive argError read as %+v, want Override returning 1", a)
	}
	if f := p.Hooks[3].Selectors[0].MatchArgs[0]; f.Arg != 0 || f.Index != 4 || f.Type != TypeInt64 {
		t.Errorf("tracepoint filter of index 0 resolved to args[%d] (index %d, %s), want args[0] (index 4, int64)", f.Arg, f.Index, f.Type)
	}
	// Without a namespace, it cannot be compiled: nothing would scope it.
	if _, err := Compile(p, 1, &seqIDs{}, nil); err == nil || !strings.Contains(err.Error(), "p.yaml:3: metadata.namespace: missing") {
		t.Errorf("compile without namespace: %v", err)
	}
}

// Socket tracking needs the socket it acts on: a returned sock, or a sock
// argument named by argSock (a position in args).
func TestParseSockTracking(t *testing.T) {
	src := header + `  kprobes:
  - call: sk_alloc
    syscall: false
    return: true
    returnArg: {type: int}
    returnArgAction: TrackSock
  - call: __sk_free
    syscall: false
    args: [{index: 0, type: sock}, {index: 1, type: int}]
    selectors:
    - matchActions: [{action: UntrackSock, argSock: 1}]
    - matchActions: [{action: UntrackSock, argSock: 2}]
    - matchActions: [{action: Post, argSock: 1}]
    - matchArgs: [{index: 0, operator: State, values: [TCP_LISTEN, TCP_LISTN]}]
  - call: tcp_connect
    syscall: false
    returnArgAction: Track
`
	_, err := Parse("p.yaml", []byte(src))
	if diff := cmp.Diff([]string{
		"p.yaml:11: spec.kprobes[0].returnArgAction: TrackSock acts on the socket the call returns: it needs return: true and a returnArg of type sock",
		"p.yaml:16: spec.kprobes[1].selectors[0].matchActions[0].argSock: argSock 1 names args[1], a int32; UntrackSock needs a sock",
		"p.yaml:17: spec.kprobes[1].selectors[1].matchActions[0].argSock: argSock 2 is out of range: it is a position in args, and the hook has 2",
		"p.yaml:18: spec.kprobes[1].selectors[2].matchActions[0].argSock: argSock applies to TrackSock and UntrackSock only, not Post",
		`p.yaml:19: spec.kprobes[1].selectors[3].matchArgs[0].values[1]: "TCP_LISTN" is not a socket state: want a name such as TCP_ESTABLISHED or TCP_SYN_RECV, or 1 to 12 (did you mean "TCP_LISTEN"?)`,
		`p.yaml:22: spec.kprobes[2].returnArgAction: "Track" is not a return action (want TrackSock or UntrackSock)`,
	}, errLines(err)); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}
