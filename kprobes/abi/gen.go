package abi

// The BPF objects of Vigil, built from the C files of this folder. `make
// generate` (or `go generate ./kprobes/abi` with clang-19, llvm-19 and
// libbpf-dev installed) rebuilds them and their Go bindings; the last line
// records what they were built from, which the tests check.

//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target amd64 -go-package abi -type event_header -type exec_event -type exit_event -type fork_event -type exec_flags -type vigil_op -type process_config -type proc_entry -type task_creds -type reader_state -type protect_reason Process process.bpf.c -- -Iinclude -I. -O2 -g -Wall -Werror
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target amd64 -go-package abi -type gen_hook -type gen_arg_desc -type gen_resolve -type gen_resolve_step -type gen_selector -type gen_arg_filter -type gen_bin_filter -type gen_pid_filter -type gen_ns_filter -type gen_cap_filter -type gen_policy -type gen_int_key -type gen_str_key -type gen_head_key -type gen_fold_key -type gen_fold -type gen_repeats -type gen_addr_key -type gen_port_key -type gen_scope_key -type gen_event -type gen_file_arg -type gen_sock_arg -type gen_hook_stats -type gen_arg_type -type gen_arg_flags -type gen_hook_flags -type gen_op -type gen_bin_op -type gen_ns -type gen_cap_set -type gen_action -type gen_policy_mode -type gen_event_flags -type gen_arg_state -type gen_limit -type gen_usdt -type gen_usdt_arg Generic generic.bpf.c -- -Iinclude -I. -O2 -g -Wall -Werror
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target amd64 -go-package abi -type flow_event -type flow_phase -type flow_direction -type flow_report Flow flow.bpf.c -- -Iinclude -I. -O2 -g -Wall -Werror
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target amd64 -go-package abi -type ipcache_key -type flow_key -type np_record -type np_direction -type np_verdict -type np_reason -type np_hook -type np_stat -type np_l7_key -type np_l7_conn -type np_l7_config -type np_l7_flag -type np_l7_stat Netpol netpol.bpf.c -- -Iinclude -I. -O2 -g -Wall -Werror
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target amd64 -go-package abi -type dns_event -type dnsvis_direction -type dnsvis_stat Dnsvis dnsvis.bpf.c -- -Iinclude -I. -O2 -g -Wall -Werror
//go:generate go run ../../tools/bpfsum -src . -out bpf_sources.sum process.bpf.c generic.bpf.c flow.bpf.c netpol.bpf.c dnsvis.bpf.c
