package nsfacts

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseNFLOGInstances(t *testing.T) {
	got, err := ParseNFLOGInstances(strings.NewReader("    5  26010     0 2 65531    100  1\n    0 4294967295     3 2   256     10  2\n\n"))
	want := []Binding{{Group: 5, PortID: 26010}, {Group: 0, PortID: 4294967295}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("%+v, %v", got, err)
	}
	for _, bad := range []string{"5\n", "x 1 0 2 0 0 1\n", "70000 1 0 2 0 0 1\n"} {
		if _, err := ParseNFLOGInstances(strings.NewReader(bad)); err == nil {
			t.Errorf("%q parsed without error", bad)
		}
	}
}

func TestParseNetlink(t *testing.T) {
	in := `sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode
00000000a22dd3ed 12  0          00000000 0        0        0     2        0        151375  
00000000dbde2538 12  26010      00000000 0        0        0     2        0        151401  
`
	got, err := ParseNetlink(strings.NewReader(in))
	want := []NetlinkSocket{{12, 0, 151375}, {12, 26010, 151401}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("%+v, %v", got, err)
	}
	if _, err := ParseNetlink(strings.NewReader("header\n1 2 3\n")); err == nil {
		t.Error("short line parsed without error")
	}
}

func FuzzParseNFLOGInstances(f *testing.F) {
	f.Add("    5  26010     0 2 65531    100  1\n")
	f.Add("0 1\n\n 65535 4294967295 0 0 0 0 0\n")
	f.Fuzz(func(t *testing.T, s string) {
		bs, err := ParseNFLOGInstances(strings.NewReader(s))
		if err == nil && len(bs) > strings.Count(s, "\n")+1 {
			t.Fatalf("%d bindings from %d lines", len(bs), strings.Count(s, "\n")+1)
		}
	})
}

func FuzzParseNetlink(f *testing.F) {
	f.Add("sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode\n00000000dbde2538 12  26010      00000000 0        0        0     2        0        151401\n")
	f.Fuzz(func(t *testing.T, s string) {
		socks, err := ParseNetlink(strings.NewReader(s))
		if err == nil && len(socks) > strings.Count(s, "\n")+1 {
			t.Fatalf("%d sockets from %d lines", len(socks), strings.Count(s, "\n")+1)
		}
	})
}
