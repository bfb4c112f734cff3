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
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e/e2elab"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop_exporter/internal/summary"
	"golang.org/x/crypto/bcrypt"
)

// TestE2ELandingPageBrowser runs the exporter in the lab behind basic auth,
// with NFLOG group 0 and the eBPF source, sends the crafted set of both
// families, and reads the landing page in a real headless chromium: for
// both groups every number on the page equals /metrics, the class picture
// is there, the script refreshes the page from the JSON (also the eBPF
// source's section, whose ids carry the string "ebpf"), and the JSON equals
// the page. Without credentials page and JSON are refused.
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
	exp, err := l.Start(l.Server, &logs, &logs, bin, "--nflog.group="+e2eGroup, "--ebpf.enable", "--web.listen-address=127.0.0.1:9786", "--web.config.file="+webConfig)
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
	groups := []string{e2eGroup, ebpfGroup}
	e2e.WaitEvery(t, 10*time.Second, 200*time.Millisecond, "nfdrop_up of groups 0 and ebpf == 1", func() bool {
		sc, err := lab.FetchMetrics(ctx, authed, base+"/metrics")
		for _, g := range groups {
			if v, ok := sc.Value("nfdrop_up", map[string]string{"group": g}); err != nil || !ok || v != 1 {
				return false
			}
		}
		return true
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
	// settle waits until every logged packet is counted in both groups
	// (every drop of the ruleset is logged) and every teardown-shaped one
	// has its evidence.
	var sc lab.Scrape
	settle := func() {
		t.Helper()
		e2e.WaitEvery(t, 20*time.Second, 200*time.Millisecond, "packets and evidence to settle", func() bool {
			counter, err := l.RuleCounter(0)
			if err != nil {
				t.Fatal(err)
			}
			sc = scrape()
			for _, g := range groups {
				m := metricsView(sc, g)
				if counter == 0 || m.packets != float64(counter) || m.evidenceTotal != m.classes["teardown"] {
					return false
				}
			}
			return true
		})
	}
	settle()
	m := metricsView(sc, e2eGroup)
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
	readDOM := func(g string) pageDOM {
		t.Helper()
		p := "g" + g + "-"
		dom, err := chromedp.Run(bctx, chromedp.Evaluate[pageDOM](`((p) => {
			const text = {};
			document.querySelectorAll('[id^="' + p + '"]').forEach(e => { text[e.id] = e.textContent.trim(); });
			const rows = id => [...document.querySelectorAll("#" + p + id + " tr[data-name]")].map(r => [...r.cells].map(c => c.textContent.trim()));
			return {
				text: text,
				title: document.querySelector("#group-" + p.slice(1, -1) + " h3").firstChild.textContent.trim(),
				classRects: document.querySelectorAll("#" + p + "classes-svg rect").length,
				evidenceRects: document.querySelectorAll("#" + p + "evidence-svg rect").length,
				ports: rows("ports"), flags: rows("flags"),
				addresses: rows("addresses"), networks: rows("networks"), reasons: rows("reasons"),
				error: document.getElementById("nfdrop-summary").hasAttribute("data-error"),
			};
		})(`+strconv.Quote(p)+`)`))
		if err != nil {
			t.Fatal(err)
		}
		return dom
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

	titles := map[string]string{e2eGroup: "NFLOG group " + e2eGroup, ebpfGroup: "eBPF source (kernel drop tracepoint)"}
	doms := map[string]pageDOM{}
	for _, g := range groups {
		dom := readDOM(g)
		doms[g] = dom
		checkPage(t, g, dom, metricsView(sc, g))
		if dom.Title != titles[g] {
			t.Errorf("group %s: section title %q, want %q", g, dom.Title, titles[g])
		}
	}
	dom := doms[e2eGroup]

	// The JSON equals the page: group 0 as a number, the eBPF source as "ebpf".
	r, err := authed.Get(base + summary.Path)
	if err != nil {
		t.Fatal(err)
	}
	var doc summary.Summary
	err = json.NewDecoder(r.Body).Decode(&doc)
	r.Body.Close()
	if err != nil || len(doc.Groups) != len(groups) {
		t.Fatalf("JSON: %v, %+v", err, doc)
	}
	for i, g := range doc.Groups {
		if g.Group.String() != groups[i] {
			t.Errorf("JSON groups[%d].group = %v, want %s", i, g.Group, groups[i])
		}
		d, p := doms[groups[i]], "g"+groups[i]+"-"
		jsonVals := map[string]float64{p + "packets": float64(g.Packets), p + "lost": float64(g.Lost),
			p + "proven": float64(g.Evidence.Proven), p + "unproven": float64(g.Evidence.Unproven), p + "skipped": float64(g.Evidence.Skipped)}
		for _, c := range g.Classes {
			jsonVals[p+"class-"+c.Name] = float64(c.Packets)
		}
		for id, v := range jsonVals {
			if d.Text[id] != strconv.FormatFloat(v, 'f', -1, 64) {
				t.Errorf("JSON %s = %v, page %s", id, v, d.Text[id])
			}
		}
		if len(g.Sources.Addresses.Entries) != len(d.Addresses) || !g.Sources.Addresses.Exact || g.Verdict != d.Text[p+"verdict"] {
			t.Errorf("JSON sources/verdict of group %s differ from the page: %+v vs %v, %q vs %q", groups[i], g.Sources.Addresses, d.Addresses, g.Verdict, d.Text[p+"verdict"])
		}
	}

	// The script updates both sections in place: after more drops, the
	// open page shows the new counts without a reload.
	if err := l.RunScenario(ctx, lab.Crafted(false), 0, 0, nil); err != nil {
		t.Fatal(err)
	}
	settle()
	e2e.WaitEvery(t, 20*time.Second, 200*time.Millisecond, "the page to show the new counts", func() bool {
		for _, g := range groups {
			if readDOM(g).Text["g"+g+"-packets"] != strconv.FormatFloat(metricsView(sc, g).packets, 'f', -1, 64) {
				return false
			}
		}
		return true
	})
	for _, g := range groups {
		checkPage(t, g, readDOM(g), metricsView(sc, g))
	}
	if !t.Failed() {
		t.Logf("page = metrics = JSON for groups %v: %v packets, classes %v, evidence %v, %d port rows, %d flag rows, sources %v; refreshed to %v packets",
			groups, m.packets, m.classes, m.evidence, len(dom.Ports), len(dom.Flags), dom.Addresses, metricsView(sc, e2eGroup).packets)
	}
}

// checkPage compares one group's section of the page with the metrics.
func checkPage(t *testing.T, group string, dom pageDOM, m metrics) {
	t.Helper()
	p := "g" + group + "-"
	// The picture: one bar segment per class, one per evidence split.
	if dom.ClassRects != 6 || dom.EvidenceRects != 3 || dom.Error {
		t.Errorf("group %s: SVG: %d class segments (want 6), %d evidence segments (want 3), script error %v", group, dom.ClassRects, dom.EvidenceRects, dom.Error)
	}
	// The page's numbers equal the metrics.
	num := func(id string) float64 {
		v, err := strconv.ParseFloat(dom.Text[id], 64)
		if err != nil {
			t.Errorf("page element #%s = %q, want a number", id, dom.Text[id])
		}
		return v
	}
	want := map[string]float64{
		p + "packets": m.packets, p + "lost": m.lost,
		p + "proven":   m.evidence["destroyed"] + m.evidence["closing"] + m.evidence["established"],
		p + "unproven": m.evidence["none"], p + "skipped": m.evidence["skipped"],
	}
	for c, n := range m.classes {
		want[p+"class-"+c] = n
	}
	for id, w := range want {
		if got := num(id); got != w {
			t.Errorf("page #%s = %v, metrics say %v", id, got, w)
		}
	}
	if dom.Text[p+"up"] != "up" {
		t.Errorf("page #%sup = %q, want up", p, dom.Text[p+"up"])
	}
	if got, want := dom.Text[p+"teardown-share"], strconv.FormatFloat(m.classes["teardown"]/m.packets*100, 'f', 1, 64)+"%"; got != want {
		t.Errorf("group %s: teardown share %q, metrics say %q", group, got, want)
	}
	checkRows(t, group+" "+"ports", dom.Ports, top(m.ports))
	checkRows(t, group+" "+"flags", dom.Flags, top(m.flags))
	// Conntrack's reasons: every drop, joined to its reason or none.
	checkRows(t, group+" "+"reasons", dom.Reasons, m.reasons)
	// Sources: one client address per family, with every non-teardown drop
	// whose source address was decoded (the crafted set has no malformed
	// packets), and its /24 and /48.
	wantSrc := map[string]float64{lab.ClientIPv4.String(): m.nonTeardownByFamily["ipv4"], lab.ClientIPv6.String(): m.nonTeardownByFamily["ipv6"]}
	checkRows(t, group+" "+"addresses", dom.Addresses, wantSrc)
	checkRows(t, group+" "+"networks", dom.Networks, map[string]float64{"10.99.0.0/24": m.nonTeardownByFamily["ipv4"], "fd99::/48": m.nonTeardownByFamily["ipv6"]})

}

type pageDOM struct {
	Text          map[string]string `json:"text"`
	Title         string            `json:"title"`
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

func metricsView(sc lab.Scrape, group string) metrics {
	m := metrics{classes: map[string]float64{}, evidence: map[string]float64{}, ports: map[string]float64{},
		flags: map[string]float64{}, nonTeardownByFamily: map[string]float64{}, reasons: map[string]float64{}}
	for k, n := range sc.Reasons(group) {
		m.reasons[k.Reason] += n
	}
	for s, n := range sc.Packets(group) {
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
	m.lost, _ = sc.Value("nfdrop_messages_lost_total", map[string]string{"group": group})
	for _, e := range []string{"destroyed", "closing", "established", "none", "skipped"} {
		v, _ := sc.Value("nfdrop_teardown_evidence_total", map[string]string{"group": group, "evidence": e})
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
