package ruleaudit

import (
	"cmp"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultMaxAge is how long one read of the ruleset serves scrapes: two
// Prometheus servers scraping the same exporter share a read, yet a removed
// rule shows within seconds.
const DefaultMaxAge = 5 * time.Second

// DefaultTimeout bounds one read of the ruleset.
const DefaultTimeout = 2 * time.Second

// MaxChainSeries caps the nfdrop_log_rule_packets_total series per group:
// chain names are the operator's, and a generated ruleset can log from
// thousands of chains. Beyond the cap (in family, table, chain order) the
// counters are summed into table and chain "(other)" of their family, so the
// group's sum stays exact.
const MaxChainSeries = 64

// otherLabel names the chains beyond MaxChainSeries.
const otherLabel = "(other)"

// arrivalMargin covers packets logged just before a rule vanished and
// delivered in a later kernel batch: they must not count as arriving without
// a rule.
const arrivalMargin = time.Second

var (
	rulesDesc = prometheus.NewDesc("nfdrop_log_rules",
		"nf_tables rules that log to the NFLOG group (nft log group, iptables-nft -j NFLOG), read from the kernel; 0 means nothing can reach the group.",
		[]string{"group"}, nil)
	uncountedDesc = prometheus.NewDesc("nfdrop_log_rules_without_counter",
		"Log rules of the group that have no counter, so that their packets are missing from nfdrop_log_rule_packets_total; add \"counter\" to them.",
		[]string{"group"}, nil)
	rulePacketsDesc = prometheus.NewDesc("nfdrop_log_rule_packets_total",
		"Sum of the packet counters of the log rules of the group in one chain, as the kernel counts them.",
		[]string{"group", "family", "table", "chain"}, nil)
	successDesc = prometheus.NewDesc("nfdrop_log_rule_audit_success",
		"1 if the last read of the nf_tables ruleset succeeded; while 0 the other nfdrop_log_rule* series are absent.",
		nil, nil)
)

// Config configures the collector.
type Config struct {
	Groups []uint16 // the bound groups; rules logging elsewhere are ignored
	Reader Reader
	MaxAge time.Duration // how long a read serves scrapes
	// LastPacket returns when the group's newest packet arrived (zero: none
	// yet); it lets the collector notice packets arriving while no rule
	// it can see logs to the group. Nil disables that check.
	LastPacket func(group uint16) time.Time
	Now        func() time.Time // nil: time.Now
}

// Collector is a prometheus.Collector that reads the ruleset at scrape time,
// at most once per MaxAge.
type Collector struct {
	cfg    Config
	logger *slog.Logger
	labels map[uint16]string

	mu        sync.Mutex // serializes reads: concurrent scrapes share one
	readAt    time.Time
	rules     []Rule
	err       error
	uncounted map[uint16]int       // last logged count of rules without counter
	zeroSince map[uint16]time.Time // first read that found no rule for the group
	warned    map[uint16]bool      // packets-without-rule warning given
}

// New builds the collector.
func New(cfg Config, logger *slog.Logger) *Collector {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Collector{cfg: cfg, logger: logger, labels: map[uint16]string{},
		uncounted: map[uint16]int{}, zeroSince: map[uint16]time.Time{}, warned: map[uint16]bool{}}
	for _, g := range cfg.Groups {
		c.labels[g] = strconv.Itoa(int(g))
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{rulesDesc, uncountedDesc, rulePacketsDesc, successDesc} {
		ch <- d
	}
}

type chainKey struct {
	group                uint16
	family, table, chain string
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	rules, err := c.snapshot()
	if err != nil {
		ch <- prometheus.MustNewConstMetric(successDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(successDesc, prometheus.GaugeValue, 1)
	found, uncounted := map[uint16]int{}, map[uint16]int{}
	packets := map[chainKey]uint64{}
	for _, r := range rules {
		if _, bound := c.labels[r.Group]; !bound {
			continue
		}
		found[r.Group]++
		if !r.Counted {
			uncounted[r.Group]++
			continue
		}
		packets[chainKey{r.Group, r.Family, r.Table, r.Chain}] += r.Packets
	}
	for _, g := range c.cfg.Groups {
		ch <- prometheus.MustNewConstMetric(rulesDesc, prometheus.GaugeValue, float64(found[g]), c.labels[g])
		ch <- prometheus.MustNewConstMetric(uncountedDesc, prometheus.GaugeValue, float64(uncounted[g]), c.labels[g])
	}
	for k, n := range capChains(packets) {
		ch <- prometheus.MustNewConstMetric(rulePacketsDesc, prometheus.CounterValue, float64(n), c.labels[k.group], k.family, k.table, k.chain)
	}
}

// capChains keeps the first MaxChainSeries chains of each group and sums the
// rest per family into "(other)".
func capChains(packets map[chainKey]uint64) map[chainKey]uint64 {
	perGroup := map[uint16][]chainKey{}
	for k := range packets {
		perGroup[k.group] = append(perGroup[k.group], k)
	}
	for _, keys := range perGroup {
		if len(keys) <= MaxChainSeries {
			continue
		}
		slices.SortFunc(keys, func(a, b chainKey) int {
			return cmp.Or(cmp.Compare(a.family, b.family), cmp.Compare(a.table, b.table), cmp.Compare(a.chain, b.chain))
		})
		for _, k := range keys[MaxChainSeries:] {
			n := packets[k]
			delete(packets, k)
			packets[chainKey{k.group, k.family, otherLabel, otherLabel}] += n
		}
	}
	return packets
}

// snapshot returns the cached read, or reads the ruleset when the cache is
// older than MaxAge.
func (c *Collector) snapshot() ([]Rule, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	if !c.readAt.IsZero() && now.Sub(c.readAt) < c.cfg.MaxAge {
		return c.rules, c.err
	}
	rules, err := c.cfg.Reader.LogRules()
	if err != nil {
		// A firewall reload can delete a chain between listing and
		// dumping it: one retry reads the new ruleset.
		rules, err = c.cfg.Reader.LogRules()
	}
	c.readAt, c.rules, c.err = now, rules, err
	if err != nil {
		c.logger.Warn("Reading the nf_tables ruleset failed; nfdrop_log_rule_audit_success is 0", "err", err)
		return nil, err
	}
	c.audit(rules, now)
	return rules, nil
}

// audit logs what an operator must act on, once per change.
func (c *Collector) audit(rules []Rule, now time.Time) {
	found, uncounted := map[uint16]int{}, map[uint16]int{}
	for _, r := range rules {
		found[r.Group]++
		if !r.Counted {
			uncounted[r.Group]++
		}
	}
	for _, g := range c.cfg.Groups {
		if n := uncounted[g]; n != c.uncounted[g] {
			c.uncounted[g] = n
			if n > 0 {
				c.logger.Warn("Log rules without a counter: add \"counter\" to them so that the exporter can check its counts against the kernel's",
					"group", g, "rules", n)
			}
		}
		if found[g] > 0 {
			delete(c.zeroSince, g)
			c.warned[g] = false
			continue
		}
		since, ok := c.zeroSince[g]
		if !ok {
			c.zeroSince[g] = now
			continue
		}
		if c.cfg.LastPacket == nil || c.warned[g] {
			continue
		}
		if last := c.cfg.LastPacket(g); !last.IsZero() && last.After(since.Add(arrivalMargin)) {
			c.warned[g] = true
			c.logger.Warn("Packets arrive on the group but no nf_tables rule logs to it: the rule is most likely an iptables-legacy rule (iptables -V says \"legacy\"), which nf_tables cannot show; nfdrop_log_rules stays 0, so switch the audit off with --no-collector.rule-audit or move to iptables-nft",
				"group", g)
		}
	}
}
