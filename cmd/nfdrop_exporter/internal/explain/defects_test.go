package explain

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The two pcapng files that crashed explain through gopacket's pcapgo (their
// construction is explained in collector/capture's corrupt_test.go).
const (
	// an interface whose if_tsresol 0xc0 asks for 2^-64 s units: a divide by zero
	tsresolOverflow = "\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\x4d\x3c\x2b\x1a\x01\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\x1c\x00\x00\x00" +
		"\x01\x00\x00\x00\x20\x00\x00\x00\xef\x00\x00\x00\x00\x00\x00\x00\x09\x00\x01\x00\xc0\x00\x00\x00\x00\x00\x00\x00\x20\x00\x00\x00"
	// a record that claims 0xfffffffc captured bytes: pcapgo allocated 4 GiB
	recordClaims4GiB = "\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\x4d\x3c\x2b\x1a\x01\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\x1c\x00\x00\x00" +
		"\x01\x00\x00\x00\x14\x00\x00\x00\xef\x00\x00\x00\x00\x00\x00\x00\x14\x00\x00\x00" +
		"\x06\x00\x00\x00\x24\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xfc\xff\xff\xff\x04\x00\x00\x00\x02\x00\x00\x05\x24\x00\x00\x00"
)

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return gz.Bytes()
}

// TestCorruptCaptures: as a file, on standard input and gzipped, both files
// give one error that says what is wrong, no report of nothing, no panic,
// and little memory.
func TestCorruptCaptures(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, file, want string
	}{
		{"tsresol", tsresolOverflow, "if_tsresol 0xc0"},
		{"4GiB", recordClaims4GiB, "claims 4294967292 bytes"},
	} {
		if len(tc.file) != map[string]int{"tsresol": 60, "4GiB": 84}[tc.name] {
			t.Fatalf("%s: %d bytes", tc.name, len(tc.file))
		}
		plain := filepath.Join(dir, tc.name+".pcapng")
		gz := plain + ".gz"
		os.WriteFile(plain, []byte(tc.file), 0o644)
		os.WriteFile(gz, gzipped(t, []byte(tc.file)), 0o644)
		for _, in := range []struct {
			how, stdin string
			files      []string
		}{{"file", "", []string{plain}}, {"stdin", tc.file, nil}, {"gzip", "", []string{gz}}} {
			t.Run(tc.name+"/"+in.how, func(t *testing.T) {
				var out bytes.Buffer
				var err error
				alloc := allocated(func() {
					err = Run(Options{Files: in.files}, strings.NewReader(in.stdin), &out)
				})
				if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Count(err.Error(), tc.want) != 1 {
					t.Errorf("err %v, want one mention of %q", err, tc.want)
				}
				if out.Len() > 0 {
					t.Errorf("nothing was read, yet the report %q", out.String())
				}
				// the pipeline's buffers and tables: a few MiB, not the 4 GiB claimed
				if alloc > 32<<20 {
					t.Errorf("allocated %d bytes", alloc)
				}
			})
		}
	}
}

func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestErrorSaidOnce: an input that cannot be opened is one sentence, in the
// returned error (which the command prints), and nothing else.
func TestErrorSaidOnce(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.log")
	var out bytes.Buffer
	err := Run(Options{Files: []string{missing}}, nil, &out)
	if err == nil || err.Error() != missing+": no such file or directory" {
		t.Errorf("error %v, want %q", err, missing+": no such file or directory")
	}
	if out.Len() > 0 {
		t.Errorf("report %q: the error is said by the returned error alone", out.String())
	}
}

// TestBinaryInput: a file that is neither a capture nor text is said to be
// so, not counted as ignored lines; a log with a run of NUL bytes (what a
// crash leaves in a syslog file) is still a log.
func TestBinaryInput(t *testing.T) {
	exe, err := os.Executable() // an ELF file: this test's binary
	if err != nil {
		t.Fatal(err)
	}
	elf, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	gz := filepath.Join(dir, "bin.gz")
	os.WriteFile(gz, gzipped(t, elf[:1<<20]), 0o644)
	for _, files := range [][]string{{exe}, {gz}} {
		var out bytes.Buffer
		err := Run(Options{Files: files}, nil, &out)
		if err == nil || err.Error() != files[0]+": not a log or capture (binary data)" {
			t.Errorf("%s: error %v", files[0], err)
		}
		if out.Len() > 0 {
			t.Errorf("%s: report %q", files[0], out.String())
		}
		r, _ := runJSON(t, files...)
		if in := r.Inputs[0]; in.Error == "" || in.Lines != 0 || in.Ignored != 0 || r.Ignored != 0 {
			t.Errorf("%s: json input %+v", files[0], in)
		}
	}
	design, err := os.ReadFile("testdata/design.log")
	if err != nil {
		t.Fatal(err)
	}
	crashed := filepath.Join(dir, "kern.log")
	os.WriteFile(crashed, append(make([]byte, 8192), design...), 0o644)
	r, err := runJSON(t, crashed)
	if err != nil || r.Total != 3 {
		t.Errorf("log after NUL bytes: err %v, total %d", err, r.Total)
	}
}

// TestJournalctlNoEntries: journalctl's "-- No entries --" says so; its
// boot separators and header are not ignored lines.
func TestJournalctlNoEntries(t *testing.T) {
	var out bytes.Buffer
	if err := Run(Options{}, strings.NewReader("-- No entries --\n"), &out); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if !strings.Contains(s, "(stdin) (journalctl): no entries\n") || !strings.Contains(s, "other lines ignored: 0") ||
		strings.Contains(s, "right file") || !strings.Contains(s, "Verdict: No entries") {
		t.Errorf("report:\n%s", s)
	}
	r, err := runOn(t, "-- No entries --\n")
	if err != nil || !r.Inputs[0].NoEntries || r.Inputs[0].Format != "journalctl" || r.Ignored != 0 || r.Inputs[0].JournalMeta != 1 {
		t.Errorf("json: err %v, inputs %+v", err, r.Inputs)
	}

	design, err := os.ReadFile("testdata/design.log")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(design), "\n")
	boots := "-- Journal begins at Sun 2026-11-22 08:00:01 UTC, ends at Wed 2026-11-25 13:35:02 UTC. --\n" + lines[0] +
		"\x1b[0;1;39m-- Boot 4d1c02d6f6a94b6e8d3f0b0a51c7e2aa --\x1b[0m\n" + lines[1] +
		"-- Boot 9b2e7c41d0a54f3f8e6c2b1a0d9e8f7c --\n" + lines[2]
	r, err = runOn(t, boots)
	if err != nil || r.Total != 3 || r.Ignored != 0 || r.Inputs[0].JournalMeta != 3 || r.Inputs[0].NoEntries || r.Inputs[0].Format != "syslog" {
		t.Errorf("boots: err %v, total %d, inputs %+v", err, r.Total, r.Inputs)
	}
}

// TestBinaryKind: the first bytes that zstd 1.5, xz and bzip2 wrote for
// testdata/design.log, and text that must stay text.
func TestBinaryKind(t *testing.T) {
	for head, want := range map[string]string{
		"\x28\xb5\x2f\xfd\x64\x10\x02\xf5\x08\x00\x56\x92":                             "zstd-compressed; explain reads gzip: zstdcat FILE | nfdrop_exporter explain",
		"\xfd7zXZ\x00\x00\x04\xe6\xd6\xb4\x46":                                         "xz-compressed; explain reads gzip: xzcat FILE | nfdrop_exporter explain",
		"BZh91AY&SY\xbd\x08":                                                           "bzip2-compressed; explain reads gzip: bzcat FILE | nfdrop_exporter explain",
		"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00>\x00\x01\x00": "binary data",
		"Nov 25 13:34:54 web1 kernel: D: IN=eth0 OUT=\n":                               "",
		"\x1b[0;1;39m-- Boot 4d1c02d6f6a94b6e8d3f0b0a51c7e2aa --\x1b[0m\n":             "",
		"\x00\x00\x00\x00\x00\x00\x00\x00Nov 25 13:34:54 web1 kernel: D: IN=eth0\n":    "", // NUL bytes left by a crash
		"caf\xe9 au lait\tw\xfcrde\r\n":                                                "", // Latin-1 text
		"":                                                                             "",
	} {
		if got := binaryKind([]byte(head)); got != want {
			t.Errorf("binaryKind(%q) = %q, want %q", head, got, want)
		}
	}
}
