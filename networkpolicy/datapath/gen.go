package datapath

// The BPF object of this package. `make generate` (or `go generate ./...`
// with clang-19, llvm-19 and libbpf-dev installed) rebuilds it; the last line
// records what it was built from, which the tests check.

//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target amd64 -go-package datapath -type ipcache_key -type flow_key -type np_record -type np_direction -type np_verdict -type np_reason -type np_hook -type np_stat Netpol ../../bpf/netpol.bpf.c -- -I../../bpf/include -I../../bpf -O2 -g -Wall -Werror
//go:generate go run ../../tools/bpfsum -src ../../bpf -out bpf_sources.sum netpol.bpf.c
