package kprobes

// The BPF objects of this package. `make generate` (or `go generate ./...`
// with clang-19, llvm-19 and libbpf-dev installed) rebuilds them; the last
// line records what they were built from, which the tests check.

//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target amd64 -go-package kprobes -type event_header -type exec_event -type exit_event -type fork_event -type exec_flags -type vigil_op -type process_config -type proc_entry Process ../bpf/process.bpf.c -- -I../bpf/include -I../bpf -O2 -g -Wall -Werror
//go:generate go run ../tools/bpfsum -src ../bpf -out bpf_sources.sum
