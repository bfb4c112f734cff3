package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nfdrop/nfdrop_exporter/collector/capture"
)

// scrape is what the bench reads from one /metrics answer (text format 0.0.4).
type scrape struct {
	Packets       float64 // sum of nfdrop_packets_total over every series of the group
	Lost          float64 // nfdrop_messages_lost_total of the group
	Up            float64 // nfdrop_up of the group
	Mallocs       float64 // go_memstats_mallocs_total
	Series        int     // sample lines in the whole answer
	PacketSeries  int     // nfdrop_packets_total series
	ExporterLines int     // sample lines of nfdrop_* families (bounded-cardinality check)
	Latency       time.Duration
}

// parseMetrics reads the families the bench needs for the group labelled
// g (an NFLOG group's number, or "ebpf").
func parseMetrics(r io.Reader, g string) (scrape, error) {
	var s scrape
	group := `group="` + g + `"`
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	seenLost := false
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		s.Series++
		name, rest, _ := strings.Cut(line, "{")
		labels := ""
		if rest != "" {
			labels, _, _ = strings.Cut(rest, "}")
		} else {
			name, _, _ = strings.Cut(line, " ")
		}
		if strings.HasPrefix(name, "nfdrop_") {
			s.ExporterLines++
		}
		want := name == "go_memstats_mallocs_total" || strings.Contains(","+labels+",", ","+group+",")
		if !want {
			continue
		}
		valuePart := line[len(name):]
		if i := strings.LastIndexByte(line, '}'); i >= 0 {
			valuePart = line[i+1:]
		}
		f := strings.Fields(valuePart)
		if len(f) == 0 {
			return s, fmt.Errorf("bench: no value in %q", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return s, fmt.Errorf("bench: bad value in %q: %v", line, err)
		}
		switch name {
		case "nfdrop_packets_total":
			s.Packets += v
			s.PacketSeries++
		case "nfdrop_messages_lost_total":
			s.Lost, seenLost = v, true
		case "nfdrop_up":
			s.Up = v
		case "go_memstats_mallocs_total":
			s.Mallocs = v
		}
	}
	if err := sc.Err(); err != nil {
		return s, err
	}
	if !seenLost {
		return s, fmt.Errorf("bench: no nfdrop_messages_lost_total{%s} in the answer", group)
	}
	return s, nil
}

// scrapeOnce fetches url with c and parses it; Latency is the time to the
// last byte.
func scrapeOnce(c *http.Client, url string, g string) (scrape, error) {
	start := time.Now()
	resp, err := c.Get(url)
	if err != nil {
		return scrape{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	lat := time.Since(start)
	if err != nil {
		return scrape{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return scrape{}, fmt.Errorf("bench: %s: %s", url, resp.Status)
	}
	s, err := parseMetrics(bytes.NewReader(body), g)
	s.Latency = lat
	return s, err
}

// countPcap returns the number of records in a pcap or pcapng file, e.g.
// what ulogd's PCAP output wrote.
func countPcap(r io.Reader) (uint64, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	if _, err := br.Peek(1); err == io.EOF {
		return 0, nil // ulogd creates the file lazily; no record, no header
	}
	cr, err := capture.Open(br)
	if err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	var n uint64
	for {
		if _, _, err := cr.Next(); err != nil {
			if err == io.EOF {
				return n, nil
			}
			return n, fmt.Errorf("bench: pcap record %d: %w", n+1, err)
		}
		n++
	}
}
