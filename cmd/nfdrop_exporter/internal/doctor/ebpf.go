package doctor

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/cilium/ebpf/btf"
)

// KernelBTF is where the kernel publishes its BTF.
const KernelBTF = "/sys/kernel/btf/vmlinux"

// CheckEBPF says whether the kernel whose BTF is at path can run the
// exporter's eBPF drop source: it needs BTF (to attach to the kfree_skb
// tracepoint as tp_btf) and the drop reason SKB_DROP_REASON_NETFILTER_DROP,
// which marks the packets netfilter dropped.
func CheckEBPF(path string) EBPF {
	spec, err := btf.LoadSpec(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return EBPF{Reason: "the kernel publishes no BTF (" + path + "; CONFIG_DEBUG_INFO_BTF)"}
		}
		return EBPF{Reason: fmt.Sprintf("reading the kernel's BTF: %v", err)}
	}
	var reasons *btf.Enum
	if err := spec.TypeByName("skb_drop_reason", &reasons); err != nil {
		return EBPF{Reason: "the kernel has no drop reasons (enum skb_drop_reason; Linux 5.17 or later)"}
	}
	for _, v := range reasons.Values {
		if v.Name == "SKB_DROP_REASON_NETFILTER_DROP" {
			return EBPF{Supported: true}
		}
	}
	return EBPF{Reason: "the kernel's drop reasons have no SKB_DROP_REASON_NETFILTER_DROP (Linux 6.0 or later)"}
}
