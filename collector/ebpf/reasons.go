package ebpf

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf/btf"
)

// ReasonUnknown names the slot of every reason value outside the kernel's
// enum skb_drop_reason: subsystem reasons (their subsystem in the high 16
// bits) and values at or above SKB_DROP_REASON_MAX.
const ReasonUnknown = "unknown"

// ReasonNetfilterDrop is the name of SKB_DROP_REASON_NETFILTER_DROP: a
// netfilter rule or chain policy dropped the packet.
const ReasonNetfilterDrop = "netfilter_drop"

// maxReasons bounds the reasons map; the kernel has about 130.
const maxReasons = 4096

// reasonTable is the kernel's enum skb_drop_reason, read from its BTF.
type reasonTable struct {
	netfilterDrop uint32   // SKB_DROP_REASON_NETFILTER_DROP
	max           uint32   // SKB_DROP_REASON_MAX: the "unknown" slot
	names         []string // by value below max; "" where the enum has no name
}

// readReasons reads enum skb_drop_reason from spec. A kernel without the
// enum, or without NETFILTER_DROP or MAX in it, is too old for this source.
func readReasons(spec *btf.Spec) (reasonTable, error) {
	var e *btf.Enum
	if err := spec.TypeByName("skb_drop_reason", &e); err != nil {
		if errors.Is(err, btf.ErrNotFound) {
			return reasonTable{}, ErrKernelTooOld
		}
		return reasonTable{}, fmt.Errorf("read enum skb_drop_reason from the kernel's BTF: %w", err)
	}
	var t reasonTable
	var haveNF, haveMax bool
	for _, v := range e.Values {
		switch v.Name {
		case "SKB_DROP_REASON_NETFILTER_DROP":
			t.netfilterDrop, haveNF = uint32(v.Value), true
		case "SKB_DROP_REASON_MAX":
			t.max, haveMax = uint32(v.Value), true
		}
	}
	if !haveNF {
		return reasonTable{}, ErrKernelTooOld
	}
	if !haveMax || t.max > maxReasons || t.netfilterDrop >= t.max {
		return reasonTable{}, fmt.Errorf("the kernel's enum skb_drop_reason is not as expected (SKB_DROP_REASON_MAX %d, NETFILTER_DROP %d)", t.max, t.netfilterDrop)
	}
	t.names = make([]string, t.max)
	for _, v := range e.Values {
		if v.Value < uint64(t.max) && t.names[v.Value] == "" {
			t.names[v.Value] = reasonName(v.Name)
		}
	}
	return t, nil
}

// reasonName is the label form of an enumerator: SKB_DROP_REASON_NO_SOCKET is
// no_socket, SKB_CONSUMED is consumed.
func reasonName(enumerator string) string {
	s, ok := strings.CutPrefix(enumerator, "SKB_DROP_REASON_")
	if !ok {
		s = strings.TrimPrefix(enumerator, "SKB_")
	}
	return strings.ToLower(s)
}

// name returns the name of reason slot i.
func (t *reasonTable) name(i uint32) string {
	if i < uint32(len(t.names)) && t.names[i] != "" {
		return t.names[i]
	}
	if i < t.max {
		return fmt.Sprintf("reason_%d", i) // a gap in the enum: never seen so far
	}
	return ReasonUnknown
}
