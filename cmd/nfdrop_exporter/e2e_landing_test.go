//go:build linux

package main

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e/e2elab"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop_exporter/internal/summary"
)

// TestE2ELandingPageBrowser runs the exporter in the lab behind basic auth,
// sends the crafted set of both families, and reads the landing page in a
// real headless chromium: every number on the page equals /metrics, the
// class picture is there, the script refreshes the page from the JSON, and
// the JSON equals the page. Without credentials page and JSON are refused.
// A full-page screenshot is written to $NFDROP_ARTIFACTS (default: the
// system temp dir) and its path logged.
func TestE2ELandingPageBrowser(t *testing.T) {
	e2e.Require(t, "ip", "iptables-restore", "ip6tables-restore", "iptables-save", "ip6tables-save", "nft", "conntrack", "sysctl")
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("NFDROP_E2E=1 but chromium is missing (apt-get install --no-install-recommends chromium): %v", err)
	}
	bin := e2e.Binary(t)
	fwDir, err := filepath.Abs(filepath.Join("..", "..", "deploy", "firewall"))
	if err != nil {
		t.Fatal(err)
	}
	l := e2elab.NewLab(t, fmt.Sprintf("nflp%d", os.Getpid()%100000), lab.Nftables, fwDir)
	if err := l.PrepareTCP(); err != nil {
		t.Fatal(err)
	}

	// Basic auth from a web config with a bcrypt hash, as deployments use it.
	const user, pass = "operator", "landing-page-secret"
	hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig := filepath.Join(t.TempDir(), "web-config.yml")
	if err := os.WriteFile(webConfig, fmt.Appendf(nil, "basic_auth_users:\n  %s: %s\n", user, hash), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs lab.SyncBuffer
	exp, err := l.Start(l.Server, &logs, &logs, bin, "--nflog.group="+e2eGroup, "--web.listen-address=127.0.0.1:9786", "--web.config.file="+webConfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = exp.Process.Signal(os.Interrupt)
		_ = exp.Wait()
		if t.Failed() {
			t.Logf("exporter output:\n%s", logs.String())
		}
	})

	anon := lab.HTTPClient(l.Server, 2*time.Second)
	authed := lab.HTTPClient(l.Server, 2*time.Second)
	authed.Transport = basicAuth{user, pass, authed.Transport}
	base := "http://127.0.0.1:9786"
	ctx := context.Background()
	scrape := func() lab.Scrape {
		t.Helper()
		sc, err := lab.FetchMetrics(ctx, authed, base+"/metrics")
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}
	e2e.WaitEvery(t, 10*time.Second, 200*time.Millisecond, "nfdrop_up{group=\"0\"} == 1", func() bool {
		sc, err := lab.FetchMetrics(ctx, authed, base+"/metrics")
		v, ok := sc.Value("nfdrop_up", map[string]string{"group": e2eGroup})
		return err == nil && ok && v == 1
	})

	// Refused without credentials, served with them.
	for _, path := range []string{"/", summary.Path, "/metrics"} {
		for _, c := range []struct {
			client *http.Client
			want   int
		}{{anon, http.StatusUnauthorized}, {authed, http.StatusOK}} {
			resp, err := c.client.Get(base + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Errorf("GET %s (credentials: %v): %d, want %d", path, c.client == authed, resp.StatusCode, c.want)
			}
		}
	}

	for _, v6 := range []bool{false, true} {
		if err := l.RunScenario(ctx, lab.Crafted(v6), 0, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until every logged packet is counted and every teardown-shaped
	// one has its evidence (decided after the conntrack hold).
	var sc lab.Scrape
	e2e.WaitEvery(t, 20*time.Second, 200*time.Millisecond, "packets and evidence to settle", func() bool {
		counter, err := l.RuleCounter(0)
		if err != nil {
			t.Fatal(err)
		}
		sc = scrape()
		m := metricsView(sc)
		return counter > 0 && m.packets == float64(counter) && m.evidenceTotal == m.classes["teardown"]
	})
	m := metricsView(sc)
	if m.classes["teardown"] == 0 || m.classes["probe"] == 0 || m.classes["handshake"] == 0 {
		t.Fatalf("the crafted set must reach several classes: %v", m.classes)
	}

	// The browser, in this (the host) namespace, reaches the exporter in the
	// lab's server namespace through a forwarder.
	fwd := forward(t, l.Server, "127.0.0.1:9786")
	pageURL := "http://" + fwd + "/"
	actx, cancel := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1000))
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	bctx, cancel = context.WithTimeout(bctx, 90*time.Second)
	defer cancel()

	// Without credentials the browser gets a 401 and no summary (headless
	// chromium, having no one to ask, ends such a load with
	// ERR_INVALID_AUTH_CREDENTIALS).
	resp, err := chromedp.Run(bctx, chromedp.NavigateResponse(pageURL))
	switch {
	case err != nil && strings.Contains(err.Error(), "ERR_INVALID_AUTH_CREDENTIALS"):
	case err != nil:
		t.Fatal(err)
	case resp.Status != http.StatusUnauthorized:
		t.Errorf("browser without credentials: status %d, want 401", resp.Status)
	}
	if n, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll("#nfdrop-summary").length`)); err != nil || n != 0 {
		t.Errorf("summary shown without credentials (%d, %v)", n, err)
	}

	if _, err := chromedp.Call(bctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	if _, err := chromedp.Call(bctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}}); err != nil {
		t.Fatal(err)
	}
	if resp, err = chromedp.Run(bctx, chromedp.NavigateResponse(pageURL)); err != nil || resp.Status != http.StatusOK {
		t.Fatalf("browser with credentials: %v, %v", resp, err)
	}
	// The script refreshes from the JSON every 5 s: wait for one refresh, so
	// what is read below went through the script, not only the server.
	if _, err := chromedp.Run(bctx, chromedp.Poll[bool](`document.getElementById("nfdrop-summary").hasAttribute("data-updated")`,
		chromedp.WithPollingTimeout(20*time.Second), chromedp.WithPollingInterval(200*time.Millisecond))); err != nil {
		t.Fatalf("the page did not refresh itself from %s: %v", summary.Path, err)
	}
	dom, err := chromedp.Run(bctx, chromedp.Evaluate[pageDOM](`(() => {
		const text = {};
		document.querySelectorAll('[id^="g0-"]').forEach(e => { text[e.id] = e.textContent.trim(); });
		const rows = id => [...document.querySelectorAll("#" + id + " tr[data-name]")].map(r => [...r.cells].map(c => c.textContent.trim()));
		return {
			text: text,
			classRects: document.querySelectorAll("#g0-classes-svg rect").length,
			evidenceRects: document.querySelectorAll("#g0-evidence-svg rect").length,
			ports: rows("g0-ports"), flags: rows("g0-flags"),
			addresses: rows("g0-addresses"), networks: rows("g0-networks"), reasons: rows("g0-reasons"),
			error: document.getElementById("nfdrop-summary").hasAttribute("data-error"),
		};
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100)) // 100: lossless PNG
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("NFDROP_ARTIFACTS")
	if dir == "" {
		dir = os.TempDir()
	}
	path := filepath.Join(dir, "nfdrop-landing-page.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("landing page screenshot: %s (%d bytes)", path, len(shot))

	// The picture: one bar segment per class, one per evidence split.
	if dom.ClassRects != 6 || dom.EvidenceRects != 3 || dom.Error {
		t.Errorf("SVG: %d class segments (want 6), %d evidence segments (want 3), script error %v", dom.ClassRects, dom.EvidenceRects, dom.Error)
	}
	// The page's numbers equal the metrics.
	num := func(id string) float64 {
		v, err := strconv.ParseFloat(dom.Text[id], 64)
		if err != nil {
			t.Errorf("page element #%s = %q, want a number", id, dom.Text[id])
		}
		return v
	}
	checks := map[string]float64{
		"g0-packets": m.packets, "g0-lost": m.lost,
		"g0-proven":   m.evidence["destroyed"] + m.evidence["closing"] + m.evidence["established"],
		"g0-unproven": m.evidence["none"], "g0-skipped": m.evidence["skipped"],
	}
	for c, n := range m.classes {
		checks["g0-class-"+c] = n
	}
	for id, want := range checks {
		if got := num(id); got != want {
			t.Errorf("page #%s = %v, metrics say %v", id, got, want)
		}
	}
	if dom.Text["g0-up"] != "up" {
		t.Errorf("page #g0-up = %q, want up", dom.Text["g0-up"])
	}
	if got, want := dom.Text["g0-teardown-share"], strconv.FormatFloat(m.classes["teardown"]/m.packets*100, 'f', 1, 64)+"%"; got != want {
		t.Errorf("teardown share %q, metrics say %q", got, want)
	}
	checkRows(t, "ports", dom.Ports, top(m.ports))
	checkRows(t, "flags", dom.Flags, top(m.flags))
	// Conntrack's reasons: every drop, joined to its reason or none.
	checkRows(t, "reasons", dom.Reasons, m.reasons)
	// Sources: one client address per family, with every non-teardown drop
	// whose source address was decoded (the crafted set has no malformed
	// packets), and its /24 and /48.
	wantSrc := map[string]float64{lab.ClientIPv4.String(): m.nonTeardownByFamily["ipv4"], lab.ClientIPv6.String(): m.nonTeardownByFamily["ipv6"]}
	checkRows(t, "addresses", dom.Addresses, wantSrc)
	checkRows(t, "networks", dom.Networks, map[string]float64{"10.99.0.0/24": m.nonTeardownByFamily["ipv4"], "fd99::/48": m.nonTeardownByFamily["ipv6"]})

	// The JSON equals the page.
	r, err := authed.Get(base + summary.Path)
	if err != nil {
		t.Fatal(err)
	}
	var doc summary.Summary
	err = json.NewDecoder(r.Body).Decode(&doc)
	r.Body.Close()
	if err != nil || len(doc.Groups) != 1 {
		t.Fatalf("JSON: %v, %+v", err, doc)
	}
	g := doc.Groups[0]
	jsonVals := map[string]float64{"g0-packets": float64(g.Packets), "g0-lost": float64(g.Lost),
		"g0-proven": float64(g.Evidence.Proven), "g0-unproven": float64(g.Evidence.Unproven), "g0-skipped": float64(g.Evidence.Skipped)}
	for _, c := range g.Classes {
		jsonVals["g0-class-"+c.Name] = float64(c.Packets)
	}
	for id, v := range jsonVals {
		if num(id) != v {
			t.Errorf("JSON %s = %v, page %s", id, v, dom.Text[id])
		}
	}
	if len(g.Sources.Addresses.Entries) != len(dom.Addresses) || !g.Sources.Addresses.Exact || g.Verdict != dom.Text["g0-verdict"] {
		t.Errorf("JSON sources/verdict differ from the page: %+v vs %v, %q vs %q", g.Sources.Addresses, dom.Addresses, g.Verdict, dom.Text["g0-verdict"])
	}
	if !t.Failed() {
		t.Logf("page = metrics = JSON: %v packets, classes %v, evidence %v, %d port rows, %d flag rows, sources %v",
			m.packets, m.classes, m.evidence, len(dom.Ports), len(dom.Flags), dom.Addresses)
	}
}

type pageDOM struct {
	Text          map[string]string `json:"text"`
	ClassRects    int               `json:"classRects"`
	EvidenceRects int               `json:"evidenceRects"`
	Ports         [][]string        `json:"ports"`
	Flags         [][]string        `json:"flags"`
	Addresses     [][]string        `json:"addresses"`
	Reasons       [][]string        `json:"reasons"`
	Networks      [][]string        `json:"networks"`
	Error         bool              `json:"error"`
}

// top keeps the 10 largest counts (ties by name), as the page shows them.
func top(m map[string]float64) map[string]float64 {
	names := slices.Collect(maps.Keys(m))
	slices.SortFunc(names, func(a, b string) int { return cmp.Or(cmp.Compare(m[b], m[a]), cmp.Compare(a, b)) })
	out := map[string]float64{}
	for _, n := range names[:min(10, len(names))] {
		out[n] = m[n]
	}
	return out
}

// checkRows compares a page table (name, packets, ...) with the expected counts.
func checkRows(t *testing.T, what string, rows [][]string, want map[string]float64) {
	t.Helper()
	got := map[string]float64{}
	for _, r := range rows {
		if len(r) < 2 {
			t.Errorf("%s: short row %v", what, r)
			continue
		}
		n, err := strconv.ParseFloat(r[1], 64)
		if err != nil {
			t.Errorf("%s: row %v: %v", what, r, err)
		}
		got[r[0]] = n
	}
	if len(got) != len(want) {
		t.Errorf("%s on the page %v, want %v", what, got, want)
		return
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s %s on the page = %v, want %v (all: %v)", what, k, got[k], v, got)
		}
	}
}

// metrics is what the page shows, computed from a scrape.
type metrics struct {
	packets, lost, evidenceTotal float64
	classes, evidence            map[string]float64
	ports, flags                 map[string]float64 // non-teardown
	nonTeardownByFamily          map[string]float64
	reasons                      map[string]float64 // drops by conntrack's reason
}

func metricsView(sc lab.Scrape) metrics {
	m := metrics{classes: map[string]float64{}, evidence: map[string]float64{}, ports: map[string]float64{},
		flags: map[string]float64{}, nonTeardownByFamily: map[string]float64{}, reasons: map[string]float64{}}
	for k, n := range sc.Reasons(e2eGroup) {
		m.reasons[k.Reason] += n
	}
	for s, n := range sc.Packets(e2eGroup) {
		m.packets += n
		m.classes[s.Class] += n
		if s.Class == "teardown" {
			continue
		}
		if s.Port != "" {
			m.ports[s.Port] += n
		}
		if s.Flags != "" {
			m.flags[s.Flags] += n
		}
		m.nonTeardownByFamily[s.Family] += n
	}
	m.lost, _ = sc.Value("nfdrop_messages_lost_total", map[string]string{"group": e2eGroup})
	for _, e := range []string{"destroyed", "closing", "established", "none", "skipped"} {
		v, _ := sc.Value("nfdrop_teardown_evidence_total", map[string]string{"group": e2eGroup, "evidence": e})
		m.evidence[e] = v
		m.evidenceTotal += v
	}
	return m
}

type basicAuth struct {
	user, pass string
	next       http.RoundTripper
}

func (b basicAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth(b.user, b.pass)
	return b.next.RoundTrip(r)
}

// forward listens on a loopback port of the test's namespace and relays each
// connection to addr in namespace ns; it returns the listening address.
func forward(t *testing.T, ns, addr string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				u, err := lab.DialContext(ctx, ns, "tcp", addr)
				if err != nil {
					return
				}
				defer u.Close()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(u, c); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, u); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	return ln.Addr().String()
}
