package explain

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func runJSON(t *testing.T, files ...string) (*Report, error) {
	t.Helper()
	var out bytes.Buffer
	err := Run(Options{Format: "json", Files: files}, nil, &out)
	var r Report
	if jerr := json.Unmarshal(out.Bytes(), &r); jerr != nil {
		t.Fatalf("%v: %s", jerr, out.String())
	}
	return &r, err
}

// TestCaptureInterfaces: NFLOG captures name interfaces by index.
func TestCaptureInterfaces(t *testing.T) {
	r, err := runJSON(t, "testdata/lab-nft.pcap")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.NonTeardown.Interfaces.Entries) == 0 || !strings.HasPrefix(r.NonTeardown.Interfaces.Entries[0].In, "if") {
		t.Errorf("interfaces %+v, want if<index>", r.NonTeardown.Interfaces)
	}
}

// TestOnlyInputFails: nothing read is not an empty report (the returned
// error says why: TestErrorSaidOnce); JSON still carries the inputs, and one
// good input gives a report that names the other as not read.
func TestOnlyInputFails(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.log")
	r, err := runJSON(t, missing)
	if err == nil || r.Inputs[0].Error != "no such file or directory" || !strings.HasPrefix(r.Verdict, "Nothing was read") {
		t.Errorf("json: err %v, inputs %+v, verdict %q", err, r.Inputs, r.Verdict)
	}
	r, err = runJSON(t, "testdata/design.log", missing)
	if err == nil || err.Error() != "not all inputs could be read ("+missing+"); the report says why and covers the rest" || r.Total == 0 || r.Inputs[1].Error == "" {
		t.Errorf("partial: err %v, total %d, inputs %+v", err, r.Total, r.Inputs)
	}
	var out bytes.Buffer
	Run(Options{Files: []string{"testdata/design.log", missing}}, nil, &out)
	if !strings.Contains(out.String(), "\n  "+missing+": not read: no such file or directory\n") {
		t.Errorf("table:\n%s", out.String())
	}
}

// TestTopSourcesBounded: more distinct sources than the sketch holds keep
// memory fixed, the heavy ones on top, and the lists say they are not exact.
func TestTopSourcesBounded(t *testing.T) {
	var b strings.Builder
	line := func(src string, dpt int, flags string) {
		b.WriteString("Nov 25 13:34:54 web1 kernel: D: IN=eth0 OUT= SRC=" + src + " DST=203.0.113.10 LEN=40 TOS=0x00 PREC=0x00 TTL=1 ID=1 PROTO=TCP SPT=40000 DPT=" + strconv.Itoa(dpt) + " WINDOW=1 RES=0x00 " + flags + " URGP=0\n")
	}
	for i := 0; i < 3*sketchCapacity; i++ {
		line("10."+strconv.Itoa(i>>16&255)+"."+strconv.Itoa(i>>8&255)+"."+strconv.Itoa(i&255), 1000+i%7, "SYN")
		if i%3 == 0 {
			line("198.51.100.7", 22, "SYN")
		}
		if i%5 == 0 {
			b.WriteString("Nov 25 13:34:54 web1 kernel: D: IN=eth0 OUT= SRC=2001:db8::9 DST=2001:db8::1 LEN=60 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=TCP SPT=40000 DPT=443 WINDOW=1 RES=0x00 ACK FIN URGP=0\n")
		}
	}
	r, err := runOn(t, b.String())
	if err != nil {
		t.Fatal(err)
	}
	top := r.TopSources[0]
	if top.Source != "198.51.100.7" || top.Packets < uint64(sketchCapacity) || top.Classes["handshake"] == 0 || top.Ports[0].Port != 22 {
		t.Errorf("top source %+v, want 198.51.100.7 with %d handshakes to 22", top, sketchCapacity)
	}
	if r.NonTeardown.Sources.Exact || r.NonTeardown.Sources.ErrorBound == 0 {
		t.Errorf("accuracy %+v, want inexact with an error bound", r.NonTeardown.Sources)
	}
	if len(r.TopTeardownSources) != 1 || r.TopTeardownSources[0].Source != "2001:db8::9" || !r.Teardown.Sources.Exact ||
		r.TopTeardownNetworks[0].Source != "2001:db8::/48" {
		t.Errorf("teardown sources %+v, networks %+v", r.TopTeardownSources, r.TopTeardownNetworks)
	}
	if r.NonTeardown.DstPorts.Entries[0] != (DstPort{"tcp", 22, uint64(sketchCapacity)}) {
		t.Errorf("dst ports %+v", r.NonTeardown.DstPorts)
	}
	if len(r.TopSources) != showSources {
		t.Errorf("%d top sources, want %d", len(r.TopSources), showSources)
	}
}

func runOn(t *testing.T, text string) (*Report, error) {
	t.Helper()
	var out bytes.Buffer
	err := Run(Options{Format: "json"}, strings.NewReader(text), &out)
	var r Report
	if jerr := json.Unmarshal(out.Bytes(), &r); jerr != nil {
		t.Fatal(jerr)
	}
	return &r, err
}

// TestUlogdFilesAgree: ulogd2's LOGEMU and JSON files of the same packets
// (written side by side in the lab) classify alike, series by series.
func TestUlogdFilesAgree(t *testing.T) {
	emu, err := runJSON(t, "testdata/lab-ulogd-logemu.log")
	if err != nil {
		t.Fatal(err)
	}
	js, err := runJSON(t, "testdata/lab-ulogd.json")
	if err != nil {
		t.Fatal(err)
	}
	if emu.Inputs[0].Format != "ulogd-logemu" || js.Inputs[0].Format != "ulogd-json" || emu.Total == 0 || emu.Unparsed+js.Unparsed+emu.Ignored+js.Ignored != 0 {
		t.Fatalf("logemu %+v, json %+v", emu.Inputs, js.Inputs)
	}
	e, _ := json.Marshal(emu.Series)
	j, _ := json.Marshal(js.Series)
	if !bytes.Equal(e, j) {
		t.Errorf("series differ:\nlogemu %s\njson   %s", e, j)
	}
	if emu.TopSources[0].Source != js.TopSources[0].Source || emu.TopSources[0].Packets != js.TopSources[0].Packets {
		t.Errorf("top sources differ: %+v / %+v", emu.TopSources[0], js.TopSources[0])
	}
}
