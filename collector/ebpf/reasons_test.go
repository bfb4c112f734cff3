package ebpf

import (
	"errors"
	"os"
	"testing"

	"github.com/cilium/ebpf/btf"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
)

// specWith returns a BTF spec holding only an enum skb_drop_reason with the
// given enumerators (nil: no such enum).
func specWith(t *testing.T, values []btf.EnumValue) *btf.Spec {
	t.Helper()
	var types []btf.Type
	if values != nil {
		types = append(types, &btf.Enum{Name: "skb_drop_reason", Size: 4, Values: values})
	} else {
		types = append(types, &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed})
	}
	b, err := btf.NewBuilder(types, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := b.Spec()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestReadReasons(t *testing.T) {
	s := specWith(t, []btf.EnumValue{
		{Name: "SKB_NOT_DROPPED_YET", Value: 0},
		{Name: "SKB_CONSUMED", Value: 1},
		{Name: "SKB_DROP_REASON_NOT_SPECIFIED", Value: 2},
		{Name: "SKB_DROP_REASON_NO_SOCKET", Value: 3},
		{Name: "SKB_DROP_REASON_NETFILTER_DROP", Value: 5},
		{Name: "SKB_DROP_REASON_TCP_INVALID_SEQUENCE", Value: 6},
		{Name: "SKB_DROP_REASON_MAX", Value: 7},
		{Name: "SKB_DROP_REASON_SUBSYS_MASK", Value: 0xffff0000},
	})
	tab, err := readReasons(s)
	if err != nil {
		t.Fatal(err)
	}
	if tab.netfilterDrop != 5 || tab.max != 7 {
		t.Errorf("netfilter_drop %d max %d, want 5 7", tab.netfilterDrop, tab.max)
	}
	for v, want := range map[uint32]string{0: "not_dropped_yet", 1: "consumed", 2: "not_specified", 3: "no_socket",
		4: "reason_4", 5: "netfilter_drop", 6: "tcp_invalid_sequence", 7: "unknown", 0xffff0000: "unknown"} {
		if got := tab.name(v); got != want {
			t.Errorf("name(%d) = %q, want %q", v, got, want)
		}
	}
}

// TestLoadKernelTooOld: a kernel whose BTF has no NETFILTER_DROP reason, or
// no drop reasons at all, gets ErrKernelTooOld before anything is loaded.
func TestLoadKernelTooOld(t *testing.T) {
	cases := map[string]*btf.Spec{
		"no netfilter_drop": specWith(t, []btf.EnumValue{
			{Name: "SKB_DROP_REASON_NOT_SPECIFIED", Value: 2}, {Name: "SKB_DROP_REASON_MAX", Value: 3}}),
		"no enum skb_drop_reason": specWith(t, nil),
	}
	// The running kernel's own BTF with the value taken out: a kernel of
	// today that lacks only that reason.
	if _, err := os.Stat(vmlinuxBTF); err == nil {
		kernel, err := btf.LoadKernelSpec()
		if err != nil {
			t.Fatal(err)
		}
		s := kernel.Copy()
		var e *btf.Enum
		if err := s.TypeByName("skb_drop_reason", &e); err != nil {
			t.Fatal(err)
		}
		kept := e.Values[:0:0]
		for _, v := range e.Values {
			if v.Name != "SKB_DROP_REASON_NETFILTER_DROP" {
				kept = append(kept, v)
			}
		}
		if len(kept) != len(e.Values)-1 {
			t.Fatalf("the kernel's enum skb_drop_reason has no NETFILTER_DROP to take out")
		}
		e.Values = kept
		cases["kernel BTF without netfilter_drop"] = s
	} else if e2e.Enabled() {
		t.Fatalf("NFDROP_E2E=1 but the kernel has no BTF: %v", err)
	}
	for name, spec := range cases {
		t.Run(name, func(t *testing.T) {
			p, err := Load(Config{KernelTypes: spec})
			if err == nil {
				p.Close()
				t.Fatal("loaded")
			}
			if !errors.Is(err, ErrKernelTooOld) || !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrPermission) {
				t.Fatalf("error %q is not ErrKernelTooOld", err)
			}
			t.Log(err)
		})
	}
}

func TestErrorsAreDistinct(t *testing.T) {
	all := []error{ErrNoBTF, ErrKernelTooOld, ErrPermission}
	for i, a := range all {
		if !errors.Is(a, ErrUnavailable) {
			t.Errorf("%v is not ErrUnavailable", a)
		}
		for j, b := range all {
			if (i == j) != errors.Is(a, b) {
				t.Errorf("errors.Is(%q, %q) = %v", a, b, errors.Is(a, b))
			}
		}
	}
	for _, err := range []error{missingCapsError("CAP_PERFMON"), refusedError(errors.New("operation not permitted"))} {
		if !errors.Is(err, ErrPermission) || !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNoBTF) || errors.Is(err, ErrKernelTooOld) {
			t.Errorf("%q is not only ErrPermission", err)
		}
	}
}
