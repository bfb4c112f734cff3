package summary

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/collector"
	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/conntrack"
	"github.com/nfdrop/nfdrop_exporter/collector/packet"
	"github.com/nfdrop/nfdrop_exporter/collector/source"
	"github.com/prometheus/common/promslog"
)

type fakeEvidence map[classify.Group][conntrack.NumEvidence]uint64

func (f fakeEvidence) EvidenceCounts(g classify.Group) ([conntrack.NumEvidence]uint64, bool) {
	c, ok := f[g]
	return c, ok
}

type fakeReasons struct{}

func (fakeReasons) DropReasons(classify.Group) (map[string]uint64, bool) {
	return map[string]uint64{"invalid_new": 3}, true
}

// tcp4 is an IPv4 TCP header from src to dst port.
func tcp4(src [4]byte, flags uint8, sport, dport uint16) *source.Message {
	b := make([]byte, 40)
	b[0], b[3], b[9] = 0x45, 40, 6
	copy(b[12:], src[:])
	b[20], b[21], b[22], b[23] = byte(sport>>8), byte(sport), byte(dport>>8), byte(dport)
	b[32], b[33] = 0x50, flags
	return &source.Message{Group: 5, Family: 2, Payload: b, Prefix: []byte("drop"), TimestampNs: time.Unix(1000, 0).UnixNano(), HasTimestamp: true}
}

func TestSummary(t *testing.T) {
	c, err := collector.New(collector.Config{Groups: []classify.Group{5}, MaxPrefixes: 4, SourcesCapacity: 8}, promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	s := New(Config{Collector: c, Evidence: fakeEvidence{5: {2, 1, 0, 4, 1}}, Reasons: fakeReasons{}, Sources: true,
		Exporter: "x", Version: "1.0", Now: clock})
	a, b := [4]byte{203, 0, 113, 5}, [4]byte{203, 0, 113, 6}
	c.Bound(5, true)
	for _, m := range []*source.Message{
		tcp4(a, packet.FlagSYN, 4000, 22), tcp4(a, packet.FlagSYN, 4001, 22), tcp4(a, packet.FlagSYN, 4002, 3389),
		tcp4(b, 0, 4003, 80), // NULL probe
		tcp4(b, packet.FlagRST, 443, 5000), tcp4(b, packet.FlagACK|packet.FlagFIN, 443, 5001), tcp4(b, packet.FlagACK, 443, 5002),
		tcp4(b, packet.FlagACK, 443, 5003),
	} {
		c.Packet(m)
	}
	c.Flush(5)
	c.Lost(5, 6)
	now = now.Add(30 * time.Second)

	got := s.Summary()
	if got.APIVersion != "v1" || got.Exporter != "x" || got.Version != "1.0" || !got.SourcesEnabled || len(got.Groups) != 1 {
		t.Fatalf("header %+v", got)
	}
	g := got.Groups[0]
	if g.Group != 5 || !g.Up || g.Packets != 8 || g.Lost != 6 || g.TeardownShare != 0.5 || *g.LastPacketAgeSeconds != 30 {
		t.Errorf("group %+v", g)
	}
	// The first sample was taken at start with nothing counted: 30 s window.
	if g.Rate.WindowSeconds != 30 || g.Rate.PacketsPerSecond != 8.0/30 || g.Rate.LostPerSecond != 6.0/30 {
		t.Errorf("rate %+v", g.Rate)
	}
	wantClasses := []Count{{"teardown", 4, 0.5, 4.0 / 30}, {"handshake", 3, 0.375, 3.0 / 30}, {"probe", 1, 0.125, 1.0 / 30},
		{"other", 0, 0, 0}, {"fragment", 0, 0, 0}, {"malformed", 0, 0, 0}}
	if !equal(g.Classes, wantClasses) {
		t.Errorf("classes %+v, want %+v", g.Classes, wantClasses)
	}
	if want := []Count{{"22", 2, 0.5, 0}, {"3389", 1, 0.25, 0}, {"80", 1, 0.25, 0}}; !equal(g.Ports, want) {
		t.Errorf("ports %+v, want %+v (teardown excluded)", g.Ports, want)
	}
	if want := []Count{{"SYN", 3, 0.75, 0}, {"NONE", 1, 0.25, 0}}; !equal(g.Flags, want) {
		t.Errorf("flags %+v, want %+v", g.Flags, want)
	}
	if e := g.Evidence; e == nil || e.Proven != 3 || e.Unproven != 4 || e.Skipped != 1 || len(e.Values) != 5 || e.Values[3].Name != "none" || e.Values[3].Share != 0.5 {
		t.Errorf("evidence %+v", g.Evidence)
	}
	if g.Level != "look" || g.Verdict != "Teardown-shaped, but conntrack knew no connection for most: could be a scan; see the sources." {
		t.Errorf("verdict %q %q: half teardown, more unproven than proven", g.Level, g.Verdict)
	}
	if len(g.Reasons) != 1 || g.Reasons[0].Name != "invalid_new" || g.Reasons[0].Packets != 3 || g.Reasons[0].Share != 1 {
		t.Errorf("reasons %+v", g.Reasons)
	}
	src := g.Sources
	if src == nil || src.Addresses.Total != 4 || !src.Addresses.Exact || len(src.Addresses.Entries) != 2 ||
		src.Addresses.Entries[0].Source != "203.0.113.5" || src.Addresses.Entries[0].Packets != 3 ||
		src.Addresses.Entries[0].Classes["handshake"] != 3 || src.Networks.Entries[0].Source != "203.0.113.0/24" ||
		src.Networks.Entries[0].Packets != 4 || src.Networks.PrefixLengthIPv4 != 24 || src.Addresses.PrefixLengthIPv6 != 128 {
		t.Errorf("sources %+v", src)
	}

	// After a minute of samples the rate covers the last minute only.
	for range 13 {
		now = now.Add(SampleInterval)
		s.Sample()
	}
	c.Packet(tcp4(a, packet.FlagSYN, 4009, 22))
	now = now.Add(time.Second)
	if r := s.Summary().Groups[0].Rate; r.WindowSeconds != 61 || r.PacketsPerSecond != 1.0/61 {
		t.Errorf("rate after a minute %+v, want 1 packet over 61 s", r)
	}

	// JSON over HTTP: the same document.
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, Path, nil))
	var doc Summary
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil || rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("%d %v %s", rec.Code, err, rec.Body)
	}
	if doc.Groups[0].Packets != 9 || doc.Groups[0].Sources.Addresses.Entries[0].Packets != 3 {
		t.Errorf("JSON %+v", doc.Groups[0])
	}
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, Path, nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", rec.Code)
	}
}

func TestSummaryOptionalParts(t *testing.T) {
	c, err := collector.New(collector.Config{Groups: []classify.Group{1}, MaxPrefixes: 1}, promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Collector: c})
	g := s.Summary().Groups[0]
	if g.Evidence != nil || g.Reasons != nil || g.Sources != nil || g.LastPacket != nil || g.Rate.WindowSeconds < 0 {
		t.Errorf("%+v", g)
	}
	b, _ := json.Marshal(g)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	if _, ok := m["reasons"]; ok {
		t.Errorf("reasons present without a reason source: %s", b)
	}
	if _, ok := m["sources"]; ok {
		t.Errorf("sources present with the view off: %s", b)
	}
	if v, ok := m["evidence"]; !ok || v != nil {
		t.Errorf("evidence should be null without conntrack: %s", b)
	}
}

type fakeRules int

func (f fakeRules) LogRules(classify.Group) (int, bool) { return int(f), true }

// TestSummaryNoLogRule: a group that no nf_tables rule feeds is not a quiet
// firewall: the JSON carries the count and the verdict says why nothing
// arrives, without claiming more than the read shows.
func TestSummaryNoLogRule(t *testing.T) {
	c, err := collector.New(collector.Config{Groups: []classify.Group{1, 2}, MaxPrefixes: 1}, promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(New(Config{Collector: c, Rules: fakeRules(0)}).Summary())
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Group    int    `json:"group"`
			LogRules *int   `json:"log_rules"`
			Level    string `json:"level"`
			Verdict  string `json:"verdict"`
		} `json:"groups"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	g := doc.Groups[1]
	if g.Group != 2 || g.LogRules == nil || *g.LogRules != 0 || g.Level != "look" ||
		g.Verdict != "No nf_tables rule logs to NFLOG group 2, so no drop can reach it unless an iptables-legacy rule logs to it: iptables-legacy rules are invisible to nf_tables. Check the group number of your log rule." {
		t.Errorf("group 2: %+v", g)
	}
	if b, _ := json.Marshal(New(Config{Collector: c}).Summary().Groups[0]); !strings.Contains(string(b), `"log_rules":null`) {
		t.Errorf("log_rules without a rule source: %s", b)
	}
}

// TestGroupIDJSON: an NFLOG group is its number, the eBPF source "ebpf".
func TestGroupIDJSON(t *testing.T) {
	for _, tc := range []struct {
		g    classify.Group
		json string
	}{{0, "0"}, {65535, "65535"}, {classify.GroupEBPF, `"ebpf"`}} {
		b, err := json.Marshal(GroupID(tc.g))
		if err != nil || string(b) != tc.json {
			t.Errorf("Marshal(%v) = %s, %v; want %s", tc.g, b, err, tc.json)
		}
		var back GroupID
		if err := json.Unmarshal(b, &back); err != nil || classify.Group(back) != tc.g {
			t.Errorf("Unmarshal(%s) = %v, %v", b, back, err)
		}
	}
	var g GroupID
	if err := json.Unmarshal([]byte(`"nflog"`), &g); err == nil {
		t.Error(`"nflog" read as a group`)
	}
}

func equal(a, b []Count) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
