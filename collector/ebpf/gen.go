package ebpf

// The BPF object and its Go loader are generated from kfree_skb.bpf.c with
// Debian's clang 14 and libbpf-dev headers, and committed, so that building
// the exporter needs no clang. `make generate` runs this; TestGenerated
// checks that the committed objects are what the source compiles to.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang-14 -strip llvm-strip-14 -go-package ebpf -output-stem kfreeskb -type drop_record kfreeSkb kfree_skb.bpf.c -- -O2 -Wall -Werror
