package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// explainBenchConfig is the explain-bench command's settings.
type explainBenchConfig struct {
	exporter string
	file     string   // the syslog file to build (or reuse when it is large enough)
	size     int64    // bytes
	seeds    []string // files of real kernel LOG lines
	reps     int
}

// runExplainBench measures `nfdrop_exporter explain` on a large syslog
// file built from real kernel LOG lines, next to mawk counting the same
// lines: lines/s, MB/s and peak RSS of both, with the load average at the
// time (the machine may be shared).
func runExplainBench(cfg explainBenchConfig) error {
	bin, err := findExporter(cfg.exporter)
	if err != nil {
		return err
	}
	mawk, err := exec.LookPath("mawk")
	if err != nil {
		return errors.New("mawk is the reference: apt-get install mawk")
	}
	if _, err := os.Stat("/usr/bin/time"); err != nil {
		return errors.New("/usr/bin/time measures peak RSS: apt-get install time")
	}
	lines, err := buildBenchFile(cfg.file, cfg.size, cfg.seeds)
	if err != nil {
		return err
	}
	st, err := os.Stat(cfg.file)
	if err != nil {
		return err
	}
	mb := float64(st.Size()) / 1e6
	fmt.Printf("file %s: %.0f MB, %d lines\n\n", cfg.file, mb, lines)
	fmt.Println("| run | program | seconds | lines/s | MB/s | CPU seconds (user+sys) | peak RSS | load average (1 min) |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for i := 1; i <= cfg.reps; i++ {
		for _, p := range []struct {
			name string
			args []string
		}{
			{"nfdrop_exporter explain", []string{bin, "explain", "--format=json", cfg.file}},
			{"mawk '/DPT=/ {n++}'", []string{mawk, "/DPT=/ {n++} END {print n}", cfg.file}},
		} {
			load := loadAverage()
			secs, cpu, rss, err := timeV(p.args)
			if err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
			fmt.Printf("| %d | %s | %.2f | %.2f M | %.0f | %.2f | %d MiB | %s |\n", i, p.name, secs,
				float64(lines)/secs/1e6, mb/secs, cpu, rss>>10, load)
		}
	}
	return nil
}

var (
	srcRE = regexp.MustCompile(`SRC=[0-9.]+ `)
	sptRE = regexp.MustCompile(`SPT=[0-9]+ `)
)

// buildBenchFile writes size bytes of kern.log lines made from the IPv4
// kernel LOG lines in seeds, with the source address and port varied (a few
// heavy sources, a long tail) so that the top-sources sketch works as on a
// real log. An existing file of at least size bytes is reused.
func buildBenchFile(path string, size int64, seeds []string) (uint64, error) {
	if st, err := os.Stat(path); err == nil && st.Size() >= size {
		b, err := os.ReadFile(path)
		if err != nil {
			return 0, err
		}
		return uint64(bytes.Count(b, []byte("\n"))), nil
	}
	var msgs []string
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			return 0, err
		}
		for _, l := range strings.Split(string(b), "\n") {
			// "[  946.705025] PREFIX IN=..." (dmesg): keep the kernel message
			if i := strings.Index(l, "] "); i >= 0 && strings.HasPrefix(l, "[") {
				l = l[i+2:]
			}
			if srcRE.MatchString(l) && strings.Contains(l, "IN=") {
				msgs = append(msgs, l)
			}
		}
	}
	if len(msgs) == 0 {
		return 0, fmt.Errorf("no IPv4 kernel LOG lines in %v", seeds)
	}
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var written int64
	var n uint64
	start := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	var line []byte
	for written < size {
		m := msgs[n%uint64(len(msgs))]
		// 1 in 4 lines from one of 8 heavy sources, the rest from 65536 others
		var src string
		if n%4 == 0 {
			src = fmt.Sprintf("SRC=203.0.113.%d ", n/4%8+1)
		} else {
			h := n * 2654435761
			src = fmt.Sprintf("SRC=198.%d.%d.%d ", 18+(h>>8)%2, (h>>16)%256, (h>>24)%256)
		}
		m = srcRE.ReplaceAllLiteralString(m, src)
		m = sptRE.ReplaceAllLiteralString(m, "SPT="+strconv.FormatUint(1024+n%60000, 10)+" ")
		t := start.Add(time.Duration(n) * time.Millisecond)
		line = t.AppendFormat(line[:0], time.Stamp)
		line = fmt.Appendf(line, " web1 kernel: [%d.%06d] %s\n", 1000+n/1000, n%1000*1000, m)
		k, err := w.Write(line)
		if err != nil {
			f.Close()
			return 0, err
		}
		written += int64(k)
		n++
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return 0, err
	}
	return n, f.Close()
}

var (
	maxRSSRE = regexp.MustCompile(`Maximum resident set size \(kbytes\): (\d+)`)
	cpuRE    = regexp.MustCompile(`(?:User|System) time \(seconds\): ([0-9.]+)`)
)

// timeV runs a command under /usr/bin/time -v: wall seconds, CPU seconds
// (user + system) and peak RSS in KiB.
func timeV(args []string) (secs, cpu float64, rssKiB int64, err error) {
	cmd := exec.Command("/usr/bin/time", append([]string{"-v"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = nil, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, 0, 0, fmt.Errorf("%v\n%s", err, stderr.String())
	}
	secs = time.Since(start).Seconds()
	m := maxRSSRE.FindStringSubmatch(stderr.String())
	if m == nil {
		return 0, 0, 0, errors.New("no peak RSS in /usr/bin/time -v output")
	}
	rssKiB, _ = strconv.ParseInt(m[1], 10, 64)
	for _, c := range cpuRE.FindAllStringSubmatch(stderr.String(), -1) {
		v, _ := strconv.ParseFloat(c[1], 64)
		cpu += v
	}
	return secs, cpu, rssKiB, nil
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

// defaultSeeds are the real kernel lines of explain's tests.
func defaultSeeds() []string {
	var out []string
	for _, base := range []string{".", filepath.Dir(os.Args[0])} {
		for d := base; ; d = filepath.Dir(d) {
			for _, f := range []string{"lab-iptables.log", "lab-nft.log"} {
				p := filepath.Join(d, "cmd", "nfdrop_exporter", "internal", "explain", "testdata", f)
				if _, err := os.Stat(p); err == nil {
					out = append(out, p)
				}
			}
			if len(out) > 0 || d == filepath.Dir(d) {
				break
			}
		}
		if len(out) > 0 {
			break
		}
	}
	return out
}
