package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
)

// openPTY opens a real pseudo-terminal pair: the secondary side is what a
// program run in a terminal has as stdin/stdout.
func openPTY(t *testing.T) (primary, secondary *os.File) {
	t.Helper()
	p, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	if err := unix.IoctlSetPointerInt(int(p.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(p.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return p, s
}

func TestTerminalDetection(t *testing.T) {
	_, pts := openPTY(t)
	if err := unix.IoctlSetWinsize(int(pts.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 30, Col: 57}); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if !isTerminal(pts) {
		t.Error("isTerminal(pty) = false")
	}
	if isTerminal(r) || isTerminal(strings.NewReader("")) {
		t.Error("isTerminal(pipe or reader) = true")
	}
	for _, tc := range []struct {
		columns string
		out     any
		want    int
	}{
		{"", pts, 57},
		{"100", pts, 100}, // COLUMNS wins
		{"", w, 80},       // not a terminal
		{"junk", w, 80},
		{"-3", w, 80},
		{"120", w, 120},
		{"", &bytes.Buffer{}, 80},
	} {
		if got := terminalWidth(tc.columns, tc.out.(interface{ Write([]byte) (int, error) })); got != tc.want {
			t.Errorf("terminalWidth(%q, %T) = %d, want %d", tc.columns, tc.out, got, tc.want)
		}
	}
	for _, tc := range []struct {
		files []string
		want  bool
	}{{nil, true}, {[]string{"-"}, true}, {[]string{"a", "-"}, true}, {[]string{"a"}, false}} {
		if got := readsStdin(tc.files); got != tc.want {
			t.Errorf("readsStdin(%q) = %v", tc.files, got)
		}
	}
}

// TestExplainTerminalHint runs the real binary with a terminal as stdin and
// stdout: it must say what it expects at once (not wait silently), read what
// is typed until Ctrl-D, and wrap the verdict at the terminal's width.
func TestExplainTerminalHint(t *testing.T) {
	bin := e2e.Binary(t)
	ptm, pts := openPTY(t)
	if err := unix.IoctlSetWinsize(int(pts.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 30, Col: 50}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "explain")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
	cmd.Env = append(os.Environ(), "COLUMNS=")
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer cmd.Process.Kill()

	// The terminal's output, copied by a reader that ends when the
	// primary side is closed.
	var out lab.SyncBuffer
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ptm.Read(buf)
			out.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	read := func(want string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !strings.Contains(out.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q within 15s; terminal shows:\n%s", want, out.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	read("paste them and end with Ctrl-D")
	line := "Nov 25 13:34:54 web1 kernel: DROP: IN=eth0 OUT= MAC= SRC=198.51.100.7 DST=203.0.113.10 LEN=40 TOS=0x00 PREC=0x00 TTL=115 ID=1 PROTO=TCP SPT=58445 DPT=22 WINDOW=254 RES=0x00 SYN URGP=0\n"
	if _, err := ptm.Write([]byte(line + "\x04")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("explain: %v\n%s", err, out.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("explain did not end after Ctrl-D:\n%s", out.String())
	}
	read("Verdict:")
	time.Sleep(200 * time.Millisecond) // the rest of the verdict
	s := out.String()
	v := s[strings.Index(s, "Verdict:"):]
	for _, l := range strings.Split(strings.ReplaceAll(v, "\r", ""), "\n") {
		if len([]rune(l)) > 50 {
			t.Errorf("verdict line wider than the 50-column terminal: %q", l)
		}
	}
	if !strings.Contains(s, "Packets classified: 1 ") {
		t.Errorf("the typed line was not classified:\n%s", s)
	}
}

// TestExplainOwnFlags: explain lists and accepts only its own flags; the
// serving flags still work without a command, and with serve.
func TestExplainOwnFlags(t *testing.T) {
	bin := e2e.Binary(t)
	help, err := exec.Command(bin, "explain", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("explain --help: %v\n%s", err, help)
	}
	for _, f := range []string{"--format", "--ports", "--max-prefixes"} {
		if !strings.Contains(string(help), f) {
			t.Errorf("explain --help does not list %s", f)
		}
	}
	for _, f := range []string{"--nflog.", "--web.", "--log.", "--conntrack.", "--collector."} {
		if flagListed(string(help), f) {
			t.Errorf("explain --help lists a serving flag %s*:\n%s", f, help)
		}
	}
	for _, args := range [][]string{
		{"explain", "--nflog.group=5", "x.log"},
		{"explain", "--web.listen-address=:1"},
		{"explain", "--log.level=debug"},
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 {
			t.Errorf("%v: exit %v, want status 2", args, err)
		}
		if lines := strings.Count(strings.TrimSpace(string(out)), "\n"); lines != 0 || !strings.Contains(string(out), "explain takes only --format, --ports and --max-prefixes") {
			t.Errorf("%v: want one sentence naming explain's flags, got:\n%s", args, out)
		}
	}
	for _, args := range [][]string{{"explain", "--format=xml"}, {"explain", "--ports=22,http"}, {"explain", "--max-prefixes=x"}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
			t.Errorf("%v: exit %v, want status 2 and one line, got:\n%s", args, err, out)
		}
	}
	serveHelp, err := exec.Command(bin, "serve", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(serveHelp), "--nflog.group") || !strings.Contains(string(serveHelp), "--web.listen-address") {
		t.Errorf("serve --help: %v, does not list the serving flags:\n%s", err, serveHelp)
	}
	// The default command still takes its flags without being named:
	// a bad value is rejected by serve's own check (exit 2), not as unknown.
	for _, args := range [][]string{{"--nflog.group=70000"}, {"serve", "--nflog.group=70000"}} {
		out, _ := exec.Command(bin, args...).CombinedOutput()
		if !strings.Contains(string(out), "want a group number from 0 to 65535") {
			t.Errorf("%v: %s", args, out)
		}
	}
}

// flagListed reports whether a --help text defines a flag starting with
// prefix (not merely mentions it in a description).
func flagListed(help, prefix string) bool {
	name := strings.TrimPrefix(prefix, "--")
	for _, l := range strings.Split(help, "\n") {
		l = strings.TrimSpace(l)
		l = strings.TrimPrefix(l, "-h, ")
		if strings.HasPrefix(l, "--"+name) || strings.HasPrefix(l, "--[no-]"+name) {
			return true
		}
	}
	return false
}

// The two pcapng files that crashed explain and the replay through
// gopacket's pcapgo (collector/capture's corrupt_test.go builds them).
const (
	tsresolOverflow = "\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\x4d\x3c\x2b\x1a\x01\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\x1c\x00\x00\x00" +
		"\x01\x00\x00\x00\x20\x00\x00\x00\xef\x00\x00\x00\x00\x00\x00\x00\x09\x00\x01\x00\xc0\x00\x00\x00\x00\x00\x00\x00\x20\x00\x00\x00"
	recordClaims4GiB = "\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\x4d\x3c\x2b\x1a\x01\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\x1c\x00\x00\x00" +
		"\x01\x00\x00\x00\x14\x00\x00\x00\xef\x00\x00\x00\x00\x00\x00\x00\x14\x00\x00\x00" +
		"\x06\x00\x00\x00\x24\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xfc\xff\xff\xff\x04\x00\x00\x00\x02\x00\x00\x05\x24\x00\x00\x00"
)

// TestExplainSaysErrorsOnce runs the real binary on inputs it cannot read:
// exit status 1, nothing on stdout, and one line on stderr that says what
// and why. The 84-byte capture runs under a 3 GB address-space limit, which
// the 4 GiB that pcapgo allocated for it broke.
func TestExplainSaysErrorsOnce(t *testing.T) {
	bin := e2e.Binary(t)
	prlimit := e2e.Tool(t, "prlimit")
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(tsresolOverflow))
	zw.Close()
	tsresol, tsresolGz, claim := write("tsresol.pcapng", []byte(tsresolOverflow)), write("tsresol.pcapng.gz", gz.Bytes()), write("claim.pcapng", []byte(recordClaims4GiB))
	missing := filepath.Join(dir, "nope.log")
	const resol = "corrupt capture: pcapng interface description at byte 28: if_tsresol 0xc0: 2^-64 s units do not fit 64 bits"
	for _, tc := range []struct {
		args  []string
		stdin string
		want  string
	}{
		{[]string{missing}, "", missing + ": no such file or directory"},
		{[]string{dir}, "", dir + ": is a directory"},
		{[]string{bin}, "", bin + ": not a log or capture (binary data)"},
		{[]string{tsresol}, "", tsresol + ": " + resol},
		{[]string{tsresolGz}, "", tsresolGz + ": " + resol},
		{nil, tsresolOverflow, "(stdin): " + resol},
		{[]string{claim}, "", claim + ": record 1: corrupt capture: pcapng record at byte 48 claims 4294967292 bytes, more than the 262144 a record may have"},
	} {
		cmd := exec.Command(prlimit, append([]string{"--as=3000000000", bin, "explain"}, tc.args...)...)
		cmd.Stdin = strings.NewReader(tc.stdin)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Errorf("explain %v: %v, want exit status 1", tc.args, err)
		}
		if stdout.Len() > 0 || stderr.String() != "explain: "+tc.want+"\n" {
			t.Errorf("explain %v:\nstdout %q\nstderr %q\nwant only %q on stderr", tc.args, stdout.String(), stderr.String(), "explain: "+tc.want+"\n")
		}
	}
}

// TestExplainJournalctlNoEntries pipes the real journalctl's output for a
// time no journal covers into the real binary: "no entries", not an
// ignored line.
func TestExplainJournalctlNoEntries(t *testing.T) {
	bin := e2e.Binary(t)
	journalctl := e2e.Tool(t, "journalctl")
	out, err := exec.Command(journalctl, "-k", "--since=2000-01-01", "--until=2000-01-02").Output()
	if err != nil {
		t.Fatalf("journalctl: %v", err)
	}
	if string(out) != "-- No entries --\n" {
		t.Fatalf("journalctl printed %q", out)
	}
	cmd := exec.Command(bin, "explain")
	cmd.Stdin = bytes.NewReader(out)
	report, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("explain: %v\n%s", err, report)
	}
	s := string(report)
	if !strings.Contains(s, "other lines ignored: 0\n  (stdin) (journalctl): no entries\n") || !strings.Contains(s, "Verdict: No entries: journalctl had no messages to show") {
		t.Errorf("report:\n%s", s)
	}
}

// TestReplayCorruptCapture: the exporter replaying the 60-byte capture
// stops at once with one error, not a panic.
func TestReplayCorruptCapture(t *testing.T) {
	bin := e2e.Binary(t)
	file := filepath.Join(t.TempDir(), "tsresol.pcapng")
	if err := os.WriteFile(file, []byte(tsresolOverflow), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--nflog.replay-file="+file, "--nflog.group=0", "--web.listen-address=127.0.0.1:0")
	done := make(chan struct{})
	time.AfterFunc(20*time.Second, func() {
		select {
		case <-done:
		default:
			cmd.Process.Kill()
		}
	})
	out, err := cmd.CombinedOutput()
	close(done)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("exit %v, want status 1", err)
	}
	if s := string(out); strings.Contains(s, "panic") || !strings.Contains(s, file+": corrupt capture: pcapng interface description at byte 28: if_tsresol 0xc0") {
		t.Errorf("output:\n%s", s)
	}
}
