package collector

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/ctstats"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeStatsReader stands in for ctnetlink, which collector/ctstats reads for real.
type fakeStatsReader struct {
	s   ctstats.Stats
	err error
}

func (f *fakeStatsReader) Stats() (ctstats.Stats, error) { return f.s, f.err }

func TestConntrackStatsExposition(t *testing.T) {
	r := &fakeStatsReader{s: ctstats.Stats{Invalid: 7, Drop: 1, EarlyDrop: 2, InsertFailed: 3, SearchRestart: 4, Entries: 12, MaxEntries: 262144}}
	var logs bytes.Buffer
	c, err := New(Config{Groups: []classify.Group{0}, MaxPrefixes: 2, ConntrackStats: r}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	stats := []string{"nfdrop_conntrack_entries", "nfdrop_conntrack_entries_limit", "nfdrop_conntrack_stat_drop_total", "nfdrop_conntrack_stat_early_drop_total",
		"nfdrop_conntrack_stat_insert_failed_total", "nfdrop_conntrack_stat_invalid_total", "nfdrop_conntrack_stat_search_restart_total", "nfdrop_conntrack_stats_success"}
	want := `
# HELP nfdrop_conntrack_entries Entries in the conntrack table of the exporter's network namespace.
# TYPE nfdrop_conntrack_entries gauge
nfdrop_conntrack_entries 12
# HELP nfdrop_conntrack_entries_limit Most entries the conntrack table holds (net.netfilter.nf_conntrack_max).
# TYPE nfdrop_conntrack_entries_limit gauge
nfdrop_conntrack_entries_limit 262144
# HELP nfdrop_conntrack_stat_drop_total Packets conntrack dropped itself (failed to set up tracking, or invalid packets a tracker rejects), summed over CPUs.
# TYPE nfdrop_conntrack_stat_drop_total counter
nfdrop_conntrack_stat_drop_total 1
# HELP nfdrop_conntrack_stat_early_drop_total Unassured entries conntrack evicted to make room because the table was full, summed over CPUs.
# TYPE nfdrop_conntrack_stat_early_drop_total counter
nfdrop_conntrack_stat_early_drop_total 2
# HELP nfdrop_conntrack_stat_insert_failed_total New entries conntrack could not insert (clashing tuples, typically racing UDP), summed over CPUs.
# TYPE nfdrop_conntrack_stat_insert_failed_total counter
nfdrop_conntrack_stat_insert_failed_total 3
# HELP nfdrop_conntrack_stat_invalid_total Packets conntrack could not track (invalid state or malformed), summed over CPUs; "ct state invalid" matches them.
# TYPE nfdrop_conntrack_stat_invalid_total counter
nfdrop_conntrack_stat_invalid_total 7
# HELP nfdrop_conntrack_stat_search_restart_total Table lookups restarted because a resize moved the entry, summed over CPUs.
# TYPE nfdrop_conntrack_stat_search_restart_total counter
nfdrop_conntrack_stat_search_restart_total 4
# HELP nfdrop_conntrack_stats_success 1 if the last read of conntrack's statistics succeeded; while 0 the other series of the family are absent.
# TYPE nfdrop_conntrack_stats_success gauge
nfdrop_conntrack_stats_success 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), stats...); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) != 0 {
		t.Errorf("lint: %v %v", problems, err)
	}

	// Failing reads: success 0, nothing else, logged once; recovery logged.
	r.err = errors.New("netlink receive: protocol not supported")
	for range 3 {
		if n := testutil.CollectAndCount(c, stats...); n != 1 {
			t.Errorf("failing read: %d series, want 1 (success 0)", n)
		}
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP nfdrop_conntrack_stats_success 1 if the last read of conntrack's statistics succeeded; while 0 the other series of the family are absent.
# TYPE nfdrop_conntrack_stats_success gauge
nfdrop_conntrack_stats_success 0
`), stats...); err != nil {
		t.Error(err)
	}
	if n := strings.Count(logs.String(), "failed"); n != 1 {
		t.Errorf("failure logged %d times over 4 scrapes, want once:\n%s", n, logs.String())
	}
	r.err = nil
	if n := testutil.CollectAndCount(c, stats...); n != 8 {
		t.Errorf("after recovery: %d series, want 8", n)
	}
	if !strings.Contains(logs.String(), "works again") {
		t.Errorf("recovery not logged:\n%s", logs.String())
	}
}
