package lab

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab/craft"
)

func TestBuildPoolTeardownMix(t *testing.T) {
	pool, err := BuildPool(MixTeardown, PoolSize, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(pool) != PoolSize {
		t.Fatalf("%d frames, want %d", len(pool), PoolSize)
	}
	shares := map[uint8]int{}
	v6 := 0
	for i, f := range pool {
		checkFrame(t, i, f)
		if f.Proto != craft.ProtoTCP {
			t.Fatalf("frame %d: protocol %d in the teardown mix", i, f.Proto)
		}
		if f.Flags&craft.SYN != 0 && (f.Dport == 80 || f.Dport == 443) {
			t.Fatalf("frame %d: SYN to %d would be accepted by the ruleset", i, f.Dport)
		}
		if f.Flags&craft.SYN == 0 && f.Dport != 443 {
			t.Fatalf("frame %d: flags %#x to port %d, want :443", i, f.Flags, f.Dport)
		}
		shares[f.Flags]++
		if f.V6 {
			v6++
		}
	}
	// The reference mix, within 2 percentage points for 8192 draws.
	for _, w := range []struct {
		flags uint8
		pct   float64
	}{
		{craft.FIN | craft.ACK, 15}, {craft.RST, 10}, {craft.RST | craft.ACK, 10}, {craft.ACK, 15},
		{craft.PSH | craft.ACK, 20}, {craft.SYN, 20}, {0, 5}, {craft.FIN | craft.PSH | craft.URG, 5},
	} {
		got := 100 * float64(shares[w.flags]) / PoolSize
		if got < w.pct-2 || got > w.pct+2 {
			t.Errorf("flags %#02x: %.1f %% of the pool, want %.0f %%", w.flags, got, w.pct)
		}
		delete(shares, w.flags)
	}
	if len(shares) != 0 {
		t.Errorf("unexpected flag bytes in the mix: %v", shares)
	}
	if v6 < PoolSize*45/100 || v6 > PoolSize*55/100 {
		t.Errorf("%d IPv6 frames of %d, want about half", v6, PoolSize)
	}
}

func TestBuildPoolRandomMix(t *testing.T) {
	pool, err := BuildPool(MixRandom, PoolSize, 2)
	if err != nil {
		t.Fatal(err)
	}
	flags := map[uint8]bool{}
	protos := map[uint8]int{}
	for i, f := range pool {
		checkFrame(t, i, f)
		if f.Dport == 80 || f.Dport == 443 {
			t.Fatalf("frame %d: destination port %d is accepted by the ruleset", i, f.Dport)
		}
		protos[f.Proto]++
		if f.Proto == craft.ProtoTCP {
			flags[f.Flags] = true
		}
	}
	if len(flags) != 256 {
		t.Errorf("%d distinct TCP flag bytes, want all 256", len(flags))
	}
	for _, p := range []uint8{craft.ProtoTCP, craft.ProtoUDP, craft.ProtoICMP, craft.ProtoICMPv6} {
		if protos[p] == 0 {
			t.Errorf("no frame with protocol %d", p)
		}
	}
	if _, err := BuildPool("bogus", 1, 1); err == nil {
		t.Error("BuildPool accepted an unknown mix")
	}
}

// checkFrame verifies the link and network headers the server's stack needs
// to deliver the frame to its INPUT chain.
func checkFrame(t *testing.T, i int, f Frame) {
	t.Helper()
	b := f.Bytes
	if !bytes.Equal(b[0:6], ServerMAC) || !bytes.Equal(b[6:12], ClientMAC) {
		t.Fatalf("frame %d: MACs %x -> %x", i, b[6:12], b[0:6])
	}
	et := binary.BigEndian.Uint16(b[12:])
	ip := b[14:]
	switch {
	case f.V6:
		if et != 0x86dd || ip[0]>>4 != 6 {
			t.Fatalf("frame %d: ethertype %#x version %d for IPv6", i, et, ip[0]>>4)
		}
		if !bytes.Equal(ip[24:40], ServerIPv6.AsSlice()) || !bytes.Equal(ip[8:16], ClientIPv6.AsSlice()[:8]) ||
			bytes.Equal(ip[8:24], ServerIPv6.AsSlice()) {
			t.Fatalf("frame %d: %x -> %x is not client /64 -> server", i, ip[8:24], ip[24:40])
		}
		if int(binary.BigEndian.Uint16(ip[4:]))+40 != len(ip) {
			t.Fatalf("frame %d: IPv6 payload length %d for %d bytes", i, binary.BigEndian.Uint16(ip[4:]), len(ip))
		}
	default:
		if et != 0x0800 || ip[0] != 0x45 {
			t.Fatalf("frame %d: ethertype %#x first byte %#x for IPv4", i, et, ip[0])
		}
		if !bytes.Equal(ip[16:20], ServerIPv4.AsSlice()) || !bytes.Equal(ip[12:15], ClientIPv4.AsSlice()[:3]) ||
			ip[15] < 2 || ip[15] == 255 {
			t.Fatalf("frame %d: %v -> %v is not client /24 -> server", i, ip[12:16], ip[16:20])
		}
		if int(binary.BigEndian.Uint16(ip[2:])) != len(ip) {
			t.Fatalf("frame %d: IPv4 total length %d for %d bytes", i, binary.BigEndian.Uint16(ip[2:]), len(ip))
		}
	}
}

func TestMultiplyNFLOG(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(firewallDir(t), "ip6tables.rules"))
	if err != nil {
		t.Fatal(err)
	}
	in := string(b)
	out, err := multiplyNFLOG(in, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	const rule = "-A INPUT -j NFLOG --nflog-group 0 --nflog-prefix \"denied\" --nflog-size 256\n"
	if c := strings.Count(out, rule); c != 3 {
		t.Errorf("%d NFLOG rules after multiplying by 3, want 3:\n%s", c, out)
	}
	// Everything else is unchanged and in order: removing the two added
	// copies gives the input back.
	if strings.Replace(out, rule+rule, "", 1) != in {
		t.Errorf("multiplying changed more than the NFLOG rule")
	}
	if _, err := multiplyNFLOG(in, 5, 2); err == nil {
		t.Error("a ruleset for group 0 accepted for group 5")
	}
	if _, err := multiplyNFLOG("*filter\n-A INPUT -j DROP\nCOMMIT\n", 0, 2); err == nil {
		t.Error("a ruleset without NFLOG rule accepted")
	}
}
