package main

import (
	"fmt"

	"github.com/alecthomas/kingpin/v2"
	"github.com/alecthomas/units"
	"github.com/cilium/ebpf/btf"
	"github.com/nfdrop/nfdrop_exporter/collector/ebpf"
)

// ebpfFlags are the --ebpf.* flags: the drop source on the kernel's drop
// tracepoint, which needs no log rule.
type ebpfFlags struct {
	enable    bool
	ringSize  units.Base2Bytes
	kernelBTF string
	nflog     bool // --nflog.enable
}

func addEBPFFlags(app *kingpin.CmdClause) *ebpfFlags {
	f := &ebpfFlags{}
	app.Flag("ebpf.enable", "Also read every packet netfilter drops in the exporter's network namespace from the kernel's drop tracepoint (a BPF program on kfree_skb, reason NETFILTER_DROP), with no log rule: series with group=\"ebpf\". Needs a kernel with BTF and the NETFILTER_DROP reason (5.17+), and CAP_BPF and CAP_PERFMON, which let the process read kernel memory and every namespace's packets.").BoolVar(&f.enable)
	app.Flag("ebpf.ring-size", "Ring buffer between the BPF program and the exporter (a power of two); a burst beyond it is counted in nfdrop_messages_lost_total{group=\"ebpf\"}.").Default("8MiB").BytesVar(&f.ringSize)
	app.Flag("ebpf.kernel-btf", "Load the program against this BTF file instead of the running kernel's; for tests.").Hidden().StringVar(&f.kernelBTF)
	app.Flag("nflog.enable", "Read the NFLOG groups of --nflog.group; --no-nflog.enable with --ebpf.enable reads the drop tracepoint alone.").Default("true").BoolVar(&f.nflog)
	return f
}

// validate checks the flags without touching the kernel.
func (f *ebpfFlags) validate(replay bool) error {
	switch {
	case !f.enable && !f.nflog:
		return fmt.Errorf("--no-nflog.enable leaves nothing to read: add --ebpf.enable, or read an NFLOG group")
	case f.enable && replay:
		return fmt.Errorf("--ebpf.enable reads the running kernel and cannot be combined with a replayed capture")
	case f.ringSize < 4*units.KiB || f.ringSize > units.GiB || f.ringSize&(f.ringSize-1) != 0:
		return fmt.Errorf("--ebpf.ring-size=%s: want a power of two from 4KiB to 1GiB", f.ringSize)
	}
	return nil
}

// load loads and attaches the program, or returns nil when --ebpf.enable is
// off. Its errors are one sentence that says which requirement is missing
// and that NFLOG alone still works.
func (f *ebpfFlags) load() (*ebpf.Program, error) {
	if !f.enable {
		return nil, nil
	}
	cfg := ebpf.Config{RingSize: int(f.ringSize)}
	if f.kernelBTF != "" {
		spec, err := btf.LoadSpec(f.kernelBTF)
		if err != nil {
			return nil, fmt.Errorf("--ebpf.kernel-btf=%s: %w", f.kernelBTF, err)
		}
		cfg.KernelTypes = spec
	}
	return ebpf.Load(cfg)
}
